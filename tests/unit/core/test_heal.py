"""engine.core.heal and the run files that heal themselves (status.json, events.jsonl)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from engine.core import heal
from engine.core.jsonlines import append_line, cut_torn_tail, read_lines
from engine.core.rundir import RunDir


def _aside(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}{heal.DAMAGED_MARK}*"))


def test_move_aside_renames_the_file_and_its_companions_and_keeps_them(tmp_path: Path) -> None:
    for suffix, data in (("", b"db"), ("-wal", b"wal"), ("-shm", b"shm")):
        (tmp_path / f"c.sqlite{suffix}").write_bytes(data)
    damage = heal.move_aside(
        tmp_path / "c.sqlite", what="the cache", reason="bad", companions=("-wal", "-shm", "-x")
    )
    assert not list(tmp_path.glob("c.sqlite")) and not (tmp_path / "c.sqlite-wal").exists()
    assert [Path(p).read_bytes() for p in damage.moved_to] == [b"db", b"wal", b"shm"]
    assert all(heal.DAMAGED_MARK in Path(p).name for p in damage.moved_to)
    assert damage.message.startswith(f"the cache {tmp_path / 'c.sqlite'} was damaged (bad); moved aside")


def test_a_second_damage_in_the_same_second_gets_its_own_name(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    moved = []
    for data in (b"one", b"two", b"three"):
        target.write_bytes(data)
        moved += heal.move_aside(target, what="f", reason="r", announce=False).moved_to
    assert sorted(Path(p).read_bytes() for p in moved) == [b"one", b"three", b"two"]


def test_listeners_hear_damage_and_the_logger_warns_only_when_none_listens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[heal.Damage] = []
    (tmp_path / "a").write_text("x")
    with caplog.at_level(logging.INFO, logger="engine.heal"), heal.listening(heard.append):
        heal.move_aside(tmp_path / "a", what="a", reason="r")
    assert [d.path for d in heard] == [str(tmp_path / "a")]
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    caplog.clear()
    (tmp_path / "b").write_text("x")
    with caplog.at_level(logging.INFO, logger="engine.heal"):
        heal.move_aside(tmp_path / "b", what="b", reason="r")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert len(heard) == 1  # the listener is gone with its block


def test_a_failing_listener_does_not_stop_the_healing(tmp_path: Path) -> None:
    def boom(damage: heal.Damage) -> None:
        raise RuntimeError("listener broke")

    (tmp_path / "a").write_text("x")
    with heal.listening(boom):
        damage = heal.move_aside(tmp_path / "a", what="a", reason="r")
    assert Path(damage.moved_to[0]).read_text() == "x"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b'{"state": "runn', "not JSON"),
        (b"[1, 2]", "a JSON list"),
        (b"\x00\xff" * 9, "not JSON"),
    ],
    ids=["empty", "truncated", "list", "garbage"],
)
def test_read_json_object_moves_a_damaged_file_aside(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "status.json"
    path.write_bytes(content)
    value, damage = heal.read_json_object(path, what="the status")
    assert value == {} and damage is not None and reason in damage.reason
    assert not path.exists() and Path(damage.moved_to[0]).read_bytes() == content


def test_read_json_object_leaves_good_and_missing_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    assert heal.read_json_object(path, what="s") == ({}, None)
    path.write_text('{"state": "done"}')
    assert heal.read_json_object(path, what="s") == ({"state": "done"}, None)


# ---------------------------------------------------------------- JSON lines


def test_a_torn_last_line_is_cut_and_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_line(path, {"event": "a"})
    append_line(path, {"event": "b"})
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"event": "c", "ti')
    damage = cut_torn_tail(path, what="the events")
    assert damage is not None and "cut off (18 bytes)" in damage.reason
    assert path.read_bytes() == whole
    assert Path(damage.moved_to[0]).read_bytes().endswith(b'"ti')
    append_line(path, {"event": "d"})
    assert [r["event"] for r in read_lines(path)[0]] == ["a", "b", "d"]


def test_a_whole_or_missing_file_needs_no_cut(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert cut_torn_tail(path, what="e") is None
    append_line(path, {"event": "a"})
    assert cut_torn_tail(path, what="e") is None
    assert not _aside(tmp_path, "events.jsonl")


# ---------------------------------------------------------------- a run's files


def test_a_damaged_status_is_rebuilt_on_the_next_write_with_a_warning(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("running", step=3)
    run.status_path.write_bytes(b'{"state": "running", "st')  # what a torn write would leave
    status = run.write_status("done", test_accuracy=0.9)
    assert status is not None and status["state"] == "done" and status["test_accuracy"] == 0.9
    assert run.read_status()["warnings"] == status["warnings"]
    [warning] = status["warnings"]
    assert "the run's status file" in warning and "moved aside" in warning
    [aside] = _aside(run.path, "status.json")
    assert aside.read_bytes() == b'{"state": "running", "st'
    events = [e for e in run.read_events()[0] if e["event"] == "warning"]
    assert [e["message"] for e in events] == [warning] and events[0]["moved_to"] == [str(aside)]
    assert f"warning: {warning}" in run.log_path.read_text()


def test_a_damaged_status_under_a_conditional_write_is_rebuilt_but_not_matched(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.status_path.write_text("garbage")
    assert run.write_status("failed", if_state=("running",), error="gone") is None
    status = run.read_status()
    assert "state" not in status and len(status["warnings"]) == 1


def test_record_warning_adds_to_status_events_and_log(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("running")
    run.record_warning("first", path="/x")
    run.record_warning("second")
    assert run.read_status()["warnings"] == ["first", "second"]
    assert [e["message"] for e in run.read_events()[0] if e["event"] == "warning"] == ["first", "second"]
    assert run.log_path.read_text() == "warning: first\nwarning: second\n"


def test_the_first_event_after_a_torn_line_heals_the_events_file(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.append_event({"event": "phase", "phase": "scan"})
    with open(run.events_path, "ab") as handle:
        handle.write(b'{"event": "step", "st')  # the process died mid-line
    again = RunDir(run.path)  # the next process to write
    again.append_event({"event": "phase", "phase": "failed"})
    events = [e["event"] for e in again.read_events()[0]]
    assert events == ["phase", "warning", "phase"]
    assert "last line is cut off" in again.read_status()["warnings"][0]
    [aside] = _aside(run.path, "events.jsonl")
    assert aside.read_bytes().endswith(b'"st')
    assert all(json.loads(line) for line in run.events_path.read_bytes().splitlines())


# ---------------------------------------------------------------- a full disk


def test_a_full_disk_error_is_recognised_even_when_wrapped() -> None:
    import errno

    from engine.core.errors import disk_full_error

    full = OSError(errno.EFBIG, "File too large", "/runs/x/model.keras")
    try:
        try:
            raise full
        except OSError as inner:
            raise RuntimeError("saving the model failed") from inner
    except RuntimeError as wrapped:
        error = disk_full_error(wrapped)
    assert error is not None and "/runs/x/model.keras" in str(error) and "disk is full" in str(error)
    assert disk_full_error(OSError(errno.ENOENT, "No such file")) is None
    assert disk_full_error(ValueError("x")) is None


def test_a_line_that_does_not_fit_is_taken_back(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.cli import REPO_ROOT

    path = tmp_path / "events.jsonl"
    append_line(path, {"event": "a"})
    before = path.read_bytes()
    code = (
        "import resource, sys\n"
        "from engine.core.jsonlines import append_line\n"
        "limit = len(open(sys.argv[1], 'rb').read()) + 10\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
        "try:\n"
        "    append_line(sys.argv[1], {'event': 'b', 'padding': 'x' * 100})\n"
        "except OSError as exc:\n"
        "    print('errno', exc.errno)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip() == "errno 27", proc.stderr  # EFBIG after a partial write
    assert path.read_bytes() == before
