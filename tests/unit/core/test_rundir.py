"""engine.runs: run folders, status, events, listing and deleting."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import runs
from engine.errors import StudioError
from engine.runs import RunDir

REPO_ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    condition: Callable[[], object], *, timeout: float = 30.0, interval: float = 0.05
) -> object:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


def _finished_run(root: Path, backbone: str = "efficientnet_lite0", **status: object) -> RunDir:
    run = RunDir.create(root, backbone=backbone)
    run.write_config({"architecture": backbone, "image_dir": "/data/flowers"})
    run.write_status("running")
    run.write_status(status.pop("state", "done"), **status)
    return run


def test_create_names_run_by_time_and_backbone(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="efficientnet_lite0")
    assert re.fullmatch(r"\d{8}-\d{6}-efficientnet_lite0", run.run_id)
    assert run.path.is_dir() and run.path.parent == tmp_path


def test_create_in_same_second_never_reuses_a_folder(tmp_path: Path) -> None:
    made = [RunDir.create(tmp_path, backbone="b") for _ in range(5)]
    assert len({r.path for r in made}) == 5
    assert all(r.path.is_dir() for r in made)


def test_create_from_two_processes_gives_distinct_folders(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from engine.runs import RunDir
        print("\\n".join(RunDir.create({str(tmp_path)!r}, backbone="b").run_id for _ in range(20)))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    ids = [line for p in procs for line in p.communicate(timeout=60)[0].split()]
    assert len(ids) == 40
    assert len(set(ids)) == 40


@pytest.mark.parametrize("backbone", ["", "../evil", "a/b", ".hidden", "x" * 80, None])
def test_create_refuses_unsafe_backbone_names(tmp_path: Path, backbone: object) -> None:
    with pytest.raises(StudioError, match="cannot name a run folder"):
        RunDir.create(tmp_path, backbone=backbone)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_create_defaults_to_the_studio_runs_folder(studio_home: Path) -> None:
    run = RunDir.create(backbone="b")
    assert run.path.parent == studio_home / "runs"


def test_paths_follow_the_run_layout(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "20250101-120000-b")
    names = {
        "config_path": "config.json",
        "events_path": "events.jsonl",
        "status_path": "status.json",
        "model_path": "model.keras",
        "labels_path": "labels.txt",
        "report_path": "report.json",
        "tb_dir": "tb",
        "export_dir": "export",
        "log_path": "train.log",
        "cancel_path": "cancel.flag",
    }
    assert {attr: getattr(run, attr).name for attr in names} == names
    assert all(getattr(run, attr).parent == run.path for attr in names)


def test_config_round_trips(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_config({"learning_rate": 0.01, "dataset": {"root": "/x"}})
    assert run.read_config() == {"learning_rate": 0.01, "dataset": {"root": "/x"}}


def test_write_status_merges_fields_and_stamps_times(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("queued", architecture="b")
    run.write_status("running", pid=os.getpid())
    status = run.write_status("done", test_accuracy=0.9)
    assert status is not None
    assert status["state"] == "done"
    assert (status["architecture"], status["pid"], status["test_accuracy"]) == ("b", os.getpid(), 0.9)
    assert status["pid_start"] == runs.process_start_ticks(os.getpid())
    assert {"created_at", "started_at", "ended_at", "updated_at"} <= set(status)
    assert run.read_status() == status


@pytest.mark.parametrize("state", ["finished", "RUNNING", "", None])
def test_write_status_refuses_unknown_states(tmp_path: Path, state: object) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    with pytest.raises(ValueError, match="not a run state"):
        run.write_status(state)  # type: ignore[arg-type]
    assert not run.status_path.exists()


def test_write_status_if_state_skips_when_state_moved_on(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("done")
    assert run.write_status("failed", if_state=("queued", "running"), error="x") is None
    assert run.read_status()["state"] == "done"
    assert "error" not in run.read_status()


def test_update_status_keeps_the_state(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("running")
    run.update_status(step=7)
    assert (run.read_status()["state"], run.read_status()["step"]) == ("running", 7)


def test_read_status_of_a_new_run_is_empty(tmp_path: Path) -> None:
    assert RunDir.create(tmp_path, backbone="b").read_status() == {}


def test_concurrent_status_updates_lose_no_field(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("running")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from engine.runs import RunDir
        run = RunDir({str(run.path)!r})
        for i in range(30):
            run.update_status(**{{f"{{sys.argv[1]}}{{i}}": i}})
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    status = run.read_status()
    assert all(f"{name}{i}" in status for name in "ab" for i in range(30))


def test_events_append_with_time_and_read_back_in_order(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    for step in range(3):
        run.append_event({"event": "step", "step": step})
    events, offset = run.read_events()
    assert [e["step"] for e in events] == [0, 1, 2]
    assert all(isinstance(e["time"], float) for e in events)
    assert offset == run.events_path.stat().st_size


def test_read_events_from_offset_returns_only_new_events(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.append_event({"event": "phase", "phase": "train"})
    _, offset = run.read_events()
    run.append_event({"event": "step", "step": 1})
    events, _ = run.read_events(offset)
    assert [e["event"] for e in events] == ["step"]


def test_read_events_leaves_a_partial_last_line_for_later(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.append_event({"event": "step", "step": 1})
    with open(run.events_path, "ab") as handle:
        handle.write(b'{"event": "step", "st')
    events, offset = run.read_events()
    assert [e["step"] for e in events] == [1]
    with open(run.events_path, "ab") as handle:
        handle.write(b'ep": 2, "time": 1.0}\n')
    more, _ = run.read_events(offset)
    assert [e["step"] for e in more] == [2]


def test_read_events_skips_corrupt_lines(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.append_event({"event": "step", "step": 1})
    with open(run.events_path, "ab") as handle:
        handle.write(b"not json\n[1, 2]\n")
    run.append_event({"event": "step", "step": 2})
    events, _ = run.read_events()
    assert [e["step"] for e in events] == [1, 2]


def test_read_events_without_file_is_empty(tmp_path: Path) -> None:
    assert RunDir.create(tmp_path, backbone="b").read_events(0) == ([], 0)


@pytest.mark.parametrize("event", [{"step": 1}, {"event": 3}, "step", None])
def test_append_event_requires_an_event_name(tmp_path: Path, event: object) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    with pytest.raises((TypeError, ValueError), match="'event' name"):
        run.append_event(event)  # type: ignore[arg-type]


def test_labels_round_trip_in_order(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_labels(["tulips", "daisy", "roses"])
    assert run.read_labels() == ["tulips", "daisy", "roses"]


@pytest.mark.parametrize("labels", [[], ["a", ""], ["a\nb"], "ab"])
def test_write_labels_refuses_bad_labels(tmp_path: Path, labels: object) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    with pytest.raises((TypeError, ValueError)):
        run.write_labels(labels)  # type: ignore[arg-type]
    assert not run.labels_path.exists()


@pytest.mark.parametrize("reader", ["read_labels", "read_report"])
def test_reading_missing_results_says_the_run_is_unfinished(tmp_path: Path, reader: str) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    with pytest.raises(StudioError, match="not finished"):
        getattr(run, reader)()


def test_report_round_trips(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_report({"test_accuracy": 0.75, "per_class": {"a": {"recall": 1.0}}})
    assert run.read_report()["per_class"]["a"]["recall"] == 1.0


def test_cancel_flag(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    assert not run.cancel_requested()
    run.request_cancel()
    assert run.cancel_requested()


def test_list_runs_summarises_each_run(tmp_path: Path) -> None:
    run = _finished_run(tmp_path, test_accuracy=0.875)
    for step in range(1, 4):
        run.append_event({"event": "step", "step": step})
    [summary] = runs.list_runs(tmp_path)
    assert summary.run_id == run.run_id
    assert summary.architecture == "efficientnet_lite0"
    assert summary.dataset == "/data/flowers"
    assert (summary.status, summary.test_accuracy, summary.steps) == ("done", 0.875, 3)
    assert summary.duration_s is not None and summary.duration_s >= 0
    assert summary.run == run


def test_list_runs_takes_test_accuracy_from_report_when_status_lacks_it(tmp_path: Path) -> None:
    run = _finished_run(tmp_path)
    run.write_report({"test_accuracy": 0.5})
    assert runs.list_runs(tmp_path)[0].test_accuracy == 0.5


def test_list_runs_is_newest_first(tmp_path: Path) -> None:
    made = [_finished_run(tmp_path, backbone="b") for _ in range(3)]
    old = RunDir(tmp_path / "20200101-000000-b")
    old.path.mkdir()
    old.write_status("done")
    assert [s.run_id for s in runs.list_runs(tmp_path)] == [r.run_id for r in reversed(made)] + [
        old.run_id
    ]


def test_list_runs_skips_half_made_and_foreign_folders(tmp_path: Path) -> None:
    good = _finished_run(tmp_path)
    RunDir.create(tmp_path, backbone="empty")  # no status or config yet
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "status.json").write_text("{}")
    (tmp_path / "20250101-120000-file").write_text("a file, not a folder")
    broken = RunDir(tmp_path / "20250101-120000-broken")
    broken.path.mkdir()
    broken.status_path.write_text("{not json")
    listed = RunDir(tmp_path / "20250101-120000-listy")
    listed.path.mkdir()
    listed.status_path.write_text("[1, 2]")
    assert [s.run_id for s in runs.list_runs(tmp_path)] == [good.run_id]


def test_list_runs_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert runs.list_runs(tmp_path / "nothing") == []


def test_get_run_finds_a_run_by_id(tmp_path: Path) -> None:
    run = _finished_run(tmp_path)
    assert runs.get_run(run.run_id, tmp_path).path == run.path


def test_get_run_of_unknown_id_says_how_to_list(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="python -m engine runs"):
        runs.get_run("20250101-120000-missing", tmp_path)


def test_latest_run_picks_newest_in_the_state(tmp_path: Path) -> None:
    done = _finished_run(tmp_path)
    _finished_run(tmp_path, state="failed", error="boom")
    assert runs.latest_run(tmp_path).run_id == done.run_id
    assert runs.latest_run(tmp_path, state="failed").error == "boom"
    assert runs.latest_run(tmp_path, state="cancelled") is None


def test_delete_run_removes_the_folder(tmp_path: Path) -> None:
    run = _finished_run(tmp_path)
    keep = _finished_run(tmp_path)
    runs.delete_run(run.run_id, tmp_path)
    assert not run.path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [keep.run_id]


def test_delete_run_refuses_a_running_run(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("running", pid=os.getpid())
    with pytest.raises(StudioError, match="cancel it first"):
        runs.delete_run(run.run_id, tmp_path)
    assert run.path.is_dir()


def test_delete_run_refuses_a_run_being_launched(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("queued")  # no pid yet: the launcher is spawning it
    with pytest.raises(StudioError, match="cancel it first"):
        runs.delete_run(run.run_id, tmp_path)
    assert run.path.is_dir()


def test_delete_run_allows_a_run_whose_process_is_gone(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.write_status("running", pid=proc.pid, pid_start=1)
    runs.delete_run(run.run_id, tmp_path)
    assert not run.path.exists()


@pytest.mark.parametrize(
    "run_id", ["../outside", "..", "/etc", "20250101-120000-b/../../x", "notes", "", None]
)
def test_delete_run_refuses_ids_that_are_not_run_names(tmp_path: Path, run_id: object) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    (tmp_path / "outside").mkdir()
    with pytest.raises(StudioError, match="not valid"):
        runs.delete_run(run_id, runs_dir)  # type: ignore[arg-type]
    assert (tmp_path / "outside").is_dir()


def test_delete_run_refuses_a_symlinked_run(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    target = _finished_run(tmp_path / "elsewhere")
    runs_dir.mkdir()
    (runs_dir / "20250101-120000-link").symlink_to(target.path)
    with pytest.raises(StudioError, match="no run"):
        runs.delete_run("20250101-120000-link", runs_dir)
    assert target.path.is_dir()


def test_delete_run_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "20250101-120000-b").mkdir()
    (tmp_path / "20250101-120000-b" / "precious.txt").write_text("keep")
    with pytest.raises(StudioError, match="does not look like a run"):
        runs.delete_run("20250101-120000-b", tmp_path)
    assert (tmp_path / "20250101-120000-b" / "precious.txt").exists()


def test_process_alive_rejects_a_recycled_pid() -> None:
    ticks = runs.process_start_ticks(os.getpid())
    assert runs.process_alive(os.getpid(), ticks)
    assert not runs.process_alive(os.getpid(), (ticks or 0) + 1)


def test_process_alive_is_false_for_a_zombie() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    # without wait() the exited child stays a zombie; poll /proc until it is one
    wait_for(lambda: (runs._read_proc_stat(proc.pid) or ["?"])[0] == "Z", timeout=30)
    assert not runs.process_alive(proc.pid)
    proc.wait()


def test_status_file_is_valid_json_after_every_write(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    for state in ("queued", "running", "done"):
        run.write_status(state)
        assert json.loads(run.status_path.read_text())["state"] == state
