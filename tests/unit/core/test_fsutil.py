"""engine.core.fsutil: atomic writes, and the one file lock (across threads and processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.fsutil import (
    atomic_path,
    atomic_write_csv,
    atomic_write_json,
    file_lock,
    read_json_dict,
)


def test_atomic_write_json_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "status.json"
    atomic_write_json(target, {"state": "running"})
    atomic_write_json(target, {"state": "done", "n": 2})
    assert json.loads(target.read_text()) == {"n": 2, "state": "done"}
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]


def test_atomic_write_csv_writes_the_columns_in_order_and_empties_missing_cells(tmp_path: Path) -> None:
    import csv

    target = tmp_path / "table.csv"
    target.write_text("old contents\n")
    rows = [{"b": 2, "a": "x, with a comma", "extra": "left out"}, {"a": None}]
    atomic_write_csv(target, ["a", "b"], iter(rows))
    assert target.read_text().splitlines()[0] == "a,b"
    with target.open(newline="") as handle:
        assert list(csv.DictReader(handle)) == [{"a": "x, with a comma", "b": "2"}, {"a": "", "b": ""}]
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_atomic_path_keeps_old_target_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_atomic_path_replaces_a_folder_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with (
        pytest.raises(StudioError, match="is a folder; refusing to replace it"),
        atomic_path(target) as tmp,
    ):
        tmp.write_text("never")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_path(target, replace_folder=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", None])
def test_read_json_dict_gives_an_empty_dict_for_missing_broken_or_non_object_files(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "status.json"
    if content is not None:
        path.write_text(content)
    assert read_json_dict(path) == {}


# ---------------------------------------------------------------- file_lock

LOCK_HOLDER = textwrap.dedent(
    """
    import sys
    from engine.core.fsutil import file_lock

    with file_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()  # hold the lock until the test closes our stdin
    """
)


def _acquire_in_thread(path: Path) -> tuple[threading.Thread, threading.Event, threading.Event]:
    """Start a thread that takes the lock, says so, and holds it until told to let go."""
    acquired, release = threading.Event(), threading.Event()

    def take() -> None:
        with file_lock(path):
            acquired.set()
            release.wait(timeout=60)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, acquired, release


def test_file_lock_excludes_a_second_process(tmp_path: Path) -> None:
    lock = tmp_path / "jobs.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(lock)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        thread, acquired, release = _acquire_in_thread(lock)
        assert not acquired.wait(timeout=1.0), "the lock was taken while another process held it"
        assert holder.stdin is not None
        holder.stdin.close()  # the other process lets go
        assert holder.wait(timeout=30) == 0
        assert acquired.wait(timeout=30), "the lock was not taken once the other process let go"
        release.set()
        thread.join(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_file_lock_is_reentrant_in_one_thread_and_excludes_other_threads(tmp_path: Path) -> None:
    lock = tmp_path / "status.lock"
    inner_reached = threading.Event()

    def nested() -> None:
        with file_lock(lock), file_lock(lock), file_lock(tmp_path / "." / "status.lock"):
            inner_reached.set()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert inner_reached.is_set() and not worker.is_alive(), "re-entering the lock deadlocked"

    with file_lock(lock):
        other, acquired, release = _acquire_in_thread(lock)
        assert not acquired.wait(timeout=0.5), "another thread took the lock while it was held"
    assert acquired.wait(timeout=30)
    release.set()
    other.join(timeout=30)


def test_file_lock_on_a_folder_adds_nothing_to_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text("{}")
    with file_lock(run):
        pass
    assert [p.name for p in run.iterdir()] == ["status.json"]


def test_file_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with pytest.raises(RuntimeError), file_lock(lock):
        raise RuntimeError("boom")
    thread, acquired, release = _acquire_in_thread(lock)
    assert acquired.wait(timeout=30)
    release.set()
    thread.join(timeout=30)
