"""engine.runs.listing: listing, finding and deleting run folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.runs.listing import delete_run, get_run, latest_run, list_runs


def _finished_run(root: Path, backbone: str = "efficientnet_lite0", **status: object) -> RunDir:
    run = RunDir.create(root, backbone=backbone)
    run.write_config({"architecture": backbone, "image_dir": "/data/flowers"})
    run.write_status("running")
    run.write_status(status.pop("state", "done"), **status)
    return run


def test_list_runs_summarises_each_run(tmp_path: Path) -> None:
    run = _finished_run(tmp_path, test_accuracy=0.875)
    for step in range(1, 4):
        run.append_event({"event": "step", "step": step})
    [summary] = list_runs(tmp_path)
    assert summary.run_id == run.run_id
    assert summary.architecture == "efficientnet_lite0"
    assert summary.dataset == "/data/flowers"
    assert (summary.status, summary.test_accuracy, summary.steps) == ("done", 0.875, 3)
    assert summary.duration_s is not None and summary.duration_s >= 0
    assert summary.run == run


def test_list_runs_takes_test_accuracy_from_report_when_status_lacks_it(tmp_path: Path) -> None:
    run = _finished_run(tmp_path)
    run.write_report({"test_accuracy": 0.5})
    assert list_runs(tmp_path)[0].test_accuracy == 0.5


def test_list_runs_is_newest_first(tmp_path: Path) -> None:
    made = [_finished_run(tmp_path, backbone="b") for _ in range(3)]
    old = RunDir(tmp_path / "20200101-000000-b")
    old.path.mkdir()
    old.write_status("done")
    assert [s.run_id for s in list_runs(tmp_path)] == [r.run_id for r in reversed(made)] + [old.run_id]


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
    assert [s.run_id for s in list_runs(tmp_path)] == [good.run_id]


def test_list_runs_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "nothing") == []


def test_get_run_finds_a_run_by_id(tmp_path: Path) -> None:
    run = _finished_run(tmp_path)
    assert get_run(run.run_id, tmp_path).path == run.path


def test_get_run_of_unknown_id_says_how_to_list(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="python -m engine runs"):
        get_run("20250101-120000-missing", tmp_path)


def test_latest_run_picks_newest_in_the_state(tmp_path: Path) -> None:
    done = _finished_run(tmp_path)
    _finished_run(tmp_path, state="failed", error="boom")
    assert latest_run(tmp_path).run_id == done.run_id
    assert latest_run(tmp_path, state="failed").error == "boom"
    assert latest_run(tmp_path, state="cancelled") is None


def test_delete_run_removes_the_folder(tmp_path: Path) -> None:
    run = _finished_run(tmp_path)
    keep = _finished_run(tmp_path)
    delete_run(run.run_id, tmp_path)
    assert not run.path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [keep.run_id]


def test_delete_run_refuses_a_running_run(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("running", pid=os.getpid())
    with pytest.raises(StudioError, match="cancel it first"):
        delete_run(run.run_id, tmp_path)
    assert run.path.is_dir()


def test_delete_run_refuses_a_run_being_launched(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.write_status("queued")  # no pid yet: the launcher is spawning it
    with pytest.raises(StudioError, match="cancel it first"):
        delete_run(run.run_id, tmp_path)
    assert run.path.is_dir()


def test_delete_run_allows_a_run_whose_process_is_gone(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.write_status("running", pid=proc.pid, pid_start=1)
    delete_run(run.run_id, tmp_path)
    assert not run.path.exists()


@pytest.mark.parametrize(
    "run_id", ["../outside", "..", "/etc", "20250101-120000-b/../../x", "notes", "", None]
)
def test_delete_run_refuses_ids_that_are_not_run_names(tmp_path: Path, run_id: object) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    (tmp_path / "outside").mkdir()
    with pytest.raises(StudioError, match="not valid"):
        delete_run(run_id, runs_dir)  # type: ignore[arg-type]
    assert (tmp_path / "outside").is_dir()


def test_delete_run_refuses_a_symlinked_run(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    target = _finished_run(tmp_path / "elsewhere")
    runs_dir.mkdir()
    (runs_dir / "20250101-120000-link").symlink_to(target.path)
    with pytest.raises(StudioError, match="no run"):
        delete_run("20250101-120000-link", runs_dir)
    assert target.path.is_dir()


def test_delete_run_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "20250101-120000-b").mkdir()
    (tmp_path / "20250101-120000-b" / "precious.txt").write_text("keep")
    with pytest.raises(StudioError, match="does not look like a run"):
        delete_run("20250101-120000-b", tmp_path)
    assert (tmp_path / "20250101-120000-b" / "precious.txt").exists()
