"""engine.core.rundir: a run folder's files (request, config, status, events, labels, report, cancel)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.procs import process_start_ticks
from engine.core.rundir import EXPORT_FILES, RunDir


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
        from engine.core.rundir import RunDir
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
        "request_path": "request.json",
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


def test_tflite_path_is_the_float_model_in_export(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "20250101-120000-b")
    assert (
        run.tflite_path
        == run.export_dir / EXPORT_FILES["tflite"]
        == run.path / "export" / "model.tflite"
    )


def test_request_round_trips_and_is_none_when_missing(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    assert run.read_request() is None
    run.write_request({"how_many_training_steps": 3, "image_dir": "/photos", "seed": None})
    assert run.read_request() == {"how_many_training_steps": 3, "image_dir": "/photos", "seed": None}
    assert json.loads(run.request_path.read_text())["how_many_training_steps"] == 3


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_a_damaged_request_is_a_studio_error_not_an_empty_one(tmp_path: Path, content: str) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    run.request_path.write_text(content)
    with pytest.raises(StudioError, match="request.json"):
        run.read_request()


@pytest.mark.parametrize("request_", [["--steps", "3"], "steps=3", None])
def test_write_request_refuses_anything_but_a_dict(tmp_path: Path, request_: object) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    with pytest.raises(TypeError, match="must be a dict"):
        run.write_request(request_)  # type: ignore[arg-type]
    assert not run.request_path.exists()


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
    assert status["pid_start"] == process_start_ticks(os.getpid())
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
        from engine.core.rundir import RunDir
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


def test_status_file_is_valid_json_after_every_write(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="b")
    for state in ("queued", "running", "done"):
        run.write_status(state)
        assert json.loads(run.status_path.read_text())["state"] == state
