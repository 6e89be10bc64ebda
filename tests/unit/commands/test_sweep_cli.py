"""`python -m engine sweep`: the leaderboard from the command line, as a job, and in `runs`.

The slow test runs one real backbone candidate end to end (random weights: the
figures' plumbing is under test, not ImageNet accuracy): features, the L-BFGS
head, the float model timed on LiteRT; nothing is exported. Another runs
`sweep --export` on ImageNet weights: the candidate's model is its LiteRT
backbone with the head appended, and the exports come with the full run.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from engine.core.rundir import RunDir
from engine.runs.jobs import JobRegistry
from engine.train.sweep_config import SweepConfig
from tests.support.cli import REPO_ROOT, run_engine
from tests.support.factories import write_class_folders

REQUIRED_COLUMNS = {
    "candidate", "test_accuracy", "macro_f1", "size_bytes", "int8_size_bytes", "latency_ms",
    "int8_accuracy_change",
}  # fmt: skip
FAKE_SWEEPER = REPO_ROOT / "tests" / "support" / "fake_sweeper.py"


@pytest.mark.slow
def test_sweep_export_makes_the_best_candidate_a_full_run_and_fills_its_int8_columns(
    tmp_path: Path,
) -> None:
    data = write_class_folders(tmp_path / "data", {"red": 6, "green": 6, "blue": 6})
    out = run_engine(
        "sweep", "--image_dir", str(data), "--architectures", "efficientnet_lite0", "--sizes", "default",
        "--testing_percentage", "25", "--validation_percentage", "25", "--seed", "3", "--export",
        "--output_dir", str(tmp_path / "runs" / "board"), home=tmp_path / "home", timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    board = json.loads((tmp_path / "runs" / "board" / "leaderboard.json").read_text())
    [row] = board["rows"]
    assert row["details"]["runtime"] == "litert" and row["details"]["tflite_accuracy"] is None
    full = RunDir(tmp_path / "runs" / row["full_run_id"])
    assert f"Full run with every export: {full.path}" in out.stdout
    exports = full.read_report()["exports"]
    assert {"tflite", "tflite_int8", "saved_model", "onnx"} <= set(exports)
    assert row["int8_size_bytes"] == exports["tflite_int8"]["size_bytes"] < row["size_bytes"]
    assert row["int8_accuracy_change"] == pytest.approx(
        exports["tflite_int8"]["accuracy"] - row["test_accuracy"]
    )
    # the sweep scored the same head the full run made: the same test accuracy
    assert full.read_report()["accuracy"] == pytest.approx(row["test_accuracy"])
    with (tmp_path / "runs" / "board" / "leaderboard.csv").open() as handle:
        [line] = list(csv.DictReader(handle))
    assert int(line["int8_size_bytes"]) == row["int8_size_bytes"]


@pytest.mark.slow
def test_sweep_prints_the_table_and_writes_leaderboard_csv_into_the_output_folder(
    tmp_path: Path,
) -> None:
    data = write_class_folders(tmp_path / "data", {"red": 6, "green": 6, "blue": 6})
    out = run_engine(
        "sweep", "--image_dir", str(data), "--architectures", "efficientnet_lite0", "--sizes", "default",
        "--testing_percentage", "25", "--validation_percentage", "25", "--seed", "3", "--random_weights",
        "--output_dir", str(tmp_path / "board"), home=tmp_path / "home",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"Sweep folder: {tmp_path / 'board'}"
    assert lines[-1] == f"Leaderboard: {tmp_path / 'board' / 'leaderboard.csv'}"
    header = next(line for line in lines if line.startswith("CANDIDATE"))
    assert header.split() == [
        "CANDIDATE",
        "TEST",
        "ACC",
        "MACRO-F1",
        "FLOAT",
        "MB",
        "INT8",
        "MB",
        "MS/IMAGE",
        "INT8",
        "ACC",
    ]
    assert any(line.startswith("efficientnet_lite0@224 ") for line in lines)
    assert "sweep       [" in out.stderr and "bottlenecks [" in out.stderr  # progress bars

    with (tmp_path / "board" / "leaderboard.csv").open() as handle:
        [row] = list(csv.DictReader(handle))
    assert set(row) >= REQUIRED_COLUMNS
    assert row["candidate"] == "efficientnet_lite0@224" and row["error"] == ""
    assert row["int8_size_bytes"] == row["int8_accuracy_change"] == ""  # until a full run is asked
    assert float(row["latency_ms"]) > 0 and 0 <= float(row["macro_f1"]) <= 1
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    [scored] = board["rows"]
    details = scored["details"]
    # the exported float model scores like the fitted head it embeds; int8's change is its own score's
    assert details["tflite_accuracy"] == pytest.approx(scored["test_accuracy"])
    assert details["features_computed"] == 18 and details["features_cached"] == 0
    assert (
        scored["full_run"]["architecture"] == "efficientnet_lite0"
        and scored["full_run"]["image_size"] == 224
    )
    assert RunDir(tmp_path / "board").read_status()["state"] == "done"
    assert not (tmp_path / "board" / "candidates").exists()  # scratch models removed


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--architectures", "efficientnet_lite0,resnet9"], "--architectures='efficientnet_lite0,resnet9' is not allowed"),
        (["--testing_percentage", "95"], "--testing_percentage=95 is not allowed"),
        (["--image_dir", "/no/such/folder"], "is not a folder"),
    ],
)  # fmt: skip
def test_bad_flags_print_one_error_line_and_exit_2(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    out = run_engine("sweep", *flags, home=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and message in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()  # no sweep folder made for a refused request


def test_an_output_folder_that_holds_files_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    out = run_engine("sweep", "--output_dir", str(folder), home=tmp_path)
    assert out.returncode == 2 and "is not an empty folder" in out.stderr
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_a_sweep_job_runs_from_its_folder_and_a_training_waits_for_it(
    tmp_path: Path, monkeypatch
) -> None:
    from engine.core.errors import StudioError
    from engine.train.config import TrainConfig

    monkeypatch.setenv("FAKE_TRAINER_GATE", str(tmp_path / "release"))
    registry = JobRegistry(runs_dir=tmp_path / "runs", command=[sys.executable, str(FAKE_SWEEPER)])
    job = registry.start(SweepConfig(architectures="efficientnet_lite0", sizes="default"))
    assert job.run_id.endswith("-sweep")
    assert (job.run_dir.read_status()["job"], job.job) == ("sweep", "sweep")
    assert registry.active().run_id == job.run_id
    with pytest.raises(StudioError, match="a model comparison is already .*one job at a time"):
        registry.start(TrainConfig(how_many_training_steps=3))
    (tmp_path / "release").touch()
    assert job.wait(60) == "done"


def test_runs_lists_a_sweep_folder_as_a_sweep(tmp_path: Path) -> None:
    from engine.train.candidates import BackboneCandidate, CandidateResult
    from engine.train.sweep import leaderboard_row, write_leaderboard

    run = RunDir.create(tmp_path / "runs", backbone="sweep")
    run.write_config({**SweepConfig(image_dir="/photos").as_dict(), "job": "sweep"})
    run.write_status("running", job="sweep", architecture="sweep")
    row = leaderboard_row(
        BackboneCandidate("efficientnet_lite1", 240), CandidateResult(0.875, 0.86, 8), 3.0
    )
    write_leaderboard(run, [row])
    run.write_status("done", best="efficientnet_lite1@240", test_accuracy=0.875)
    out = run_engine("runs", "--runs_dir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    [line] = [line for line in out.stdout.splitlines() if line.startswith(run.run_id)]
    assert line.split()[1:4] == ["done", "sweep", "87.5%"]


def test_a_sweep_job_whose_request_is_refused_says_why_in_its_folder(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone="sweep")
    run.write_request({**SweepConfig().as_dict(), "architectures": "resnet9"})
    out = run_engine("sweep", "--run_dir", str(run.path), home=tmp_path)
    assert out.returncode == 2 and "--architectures='resnet9' is not allowed" in out.stderr
    status = run.read_status()
    assert (status["state"], status["job"]) == ("failed", "sweep")
    assert "resnet9" in status["error"]
