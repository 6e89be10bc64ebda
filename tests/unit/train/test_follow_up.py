"""A run usable before TensorFlow is imported, and the exports that follow it.

One deferred fast-path run (L-BFGS on the session's warm cache, `--defer_exports`)
is trained from the CLI in a fresh process, which reports whether TensorFlow was
ever imported. Its exports are then made the ways a user makes them: the
`export` command, and `start_export` (what the Train report's button calls);
every export must answer the test photos as the early model did.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import StudioError
from engine.core.rundir import EXPORT_FILES, RunDir
from engine.data.scan import scan_dataset
from engine.runs.exports import start_export
from engine.serve.inference import Predictor
from engine.train.follow_up import export_state, head_path
from tests.support.cli import REPO_ROOT, run_engine
from tests.support.tiny_model import TinyRun
from tests.support.waiting import wait_for

FLOAT_TOLERANCE = 1e-4  # the bar for a float export against the early model
DEADLINE_S = 600

# `python -m engine ARGS`, then whether TensorFlow was imported at any point.
_ENGINE_THEN_MODULES = (
    "import sys\n"
    "from engine.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('TENSORFLOW IMPORTED:', 'tensorflow' in sys.modules, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _flags(tiny_run: TinyRun, runs: Path) -> list[str]:
    config = tiny_run.config
    return [
        "--image_dir", str(tiny_run.data_dir), "--architecture", config.architecture,
        "--image_size", str(config.image_size), "--testing_percentage", str(config.testing_percentage),
        "--validation_percentage", str(config.validation_percentage), "--seed", str(config.seed),
        "--bottleneck_dir", str(tiny_run.bottleneck_dir), "--runs_dir", str(runs),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def deferred(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A default (L-BFGS) retrain on the warm cache with its exports deferred, from the CLI."""
    runs = tmp_path_factory.mktemp("deferred") / "runs"
    proc = subprocess.run(
        [sys.executable, "-c", _ENGINE_THEN_MODULES, "retrain", *_flags(tiny_run, runs), "--defer_exports"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    [folder] = runs.iterdir()
    return {"run": RunDir(folder), "proc": proc}


def _test_photos(run: RunDir) -> list[Path]:
    config = run.read_config()
    dataset = scan_dataset(
        config["image_dir"], testing_percentage=config["testing_percentage"],
        validation_percentage=config["validation_percentage"],
    )  # fmt: skip
    return [Path(record.path) for record in dataset.split("test")]


@pytest.mark.slow
def test_a_warm_default_retrain_is_done_and_usable_without_ever_importing_tensorflow(deferred) -> None:
    run, proc = deferred["run"], deferred["proc"]
    assert "TENSORFLOW IMPORTED: False" in proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("Final test accuracy = ")
    assert run.read_status()["state"] == "done"
    assert run.tflite_path.is_file() and head_path(run).is_file()
    assert not run.model_path.exists(), "model.keras is the follow-up's, deferred here"
    assert export_state(run)["state"] == "pending"
    predictor = Predictor.from_run(run.path)
    assert predictor.runtime == "litert"
    photos = _test_photos(run)
    right = [predictor.predict(p).label == p.parent.name for p in photos]
    assert np.mean(right) == pytest.approx(run.read_report()["accuracy"])


@pytest.mark.slow
def test_every_export_answers_the_test_photos_as_the_early_model_did(deferred, tmp_path) -> None:
    run = RunDir(shutil.copytree(deferred["run"].path, tmp_path / deferred["run"].run_id))
    early = tmp_path / "early.tflite"
    shutil.copyfile(run.tflite_path, early)
    proc = run_engine("export", "--run_dir", str(run.path), "--formats", "all", timeout=DEADLINE_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert run.tflite_path.read_bytes() == early.read_bytes(), "the early model is the float export"
    photos = _test_photos(run)
    assert photos
    reference = Predictor.from_files(early, run.labels_path)
    expected = np.stack([reference.predict(p).probabilities for p in photos])
    models = {
        "keras": run.model_path,
        "saved_model": run.export_dir / EXPORT_FILES["saved_model"],
        "onnx": run.export_dir / EXPORT_FILES["onnx"],
        "tflite_int8": run.export_dir / EXPORT_FILES["tflite_int8"],
    }
    report = run.read_report()
    for name, path in models.items():
        predictor = Predictor.from_files(path, run.labels_path)
        got = np.stack([predictor.predict(p).probabilities for p in photos])
        agreement = float(np.mean(got.argmax(1) == expected.argmax(1)))
        if name == "tflite_int8":  # quantised: its agreement is measured and reported, not 100 %
            reported = report["exports"][name]["top1_agreement"]
            assert reported == pytest.approx(agreement, abs=1 / len(photos) + 1e-9)
            continue
        assert agreement == 1.0, name
        assert float(np.abs(got - expected).max()) <= FLOAT_TOLERANCE, name
    for name in ("saved_model", "onnx", "tflite_int8"):
        figures = report["exports"][name]
        assert figures.get("error") is None and figures["accuracy"] is not None, (name, figures)
    card = (run.path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "ONNX" in card
    assert export_state(run)["state"] == "done"


@pytest.mark.slow
def test_start_export_runs_once_in_the_background_and_reports_its_progress(deferred, tmp_path) -> None:
    run = RunDir(shutil.copytree(deferred["run"].path, tmp_path / deferred["run"].run_id))
    with pytest.raises(StudioError, match="not allowed"):
        start_export(run, ["coreml"])
    pid = start_export(run, ["onnx"])
    state = export_state(run)
    assert state["pid"] == pid and state["state"] in ("queued", "running", "done")
    if state["state"] != "done":
        with pytest.raises(StudioError, match="already"):
            start_export(run, ["onnx"])
    wait_for(lambda: export_state(run)["state"] in ("done", "failed"), timeout=DEADLINE_S, what="export")
    state = export_state(run)
    assert state["state"] == "done", (state, run.log_path.read_text()[-3000:])
    assert run.read_report()["exports"]["onnx"]["accuracy"] is not None
    assert (run.export_dir / EXPORT_FILES["onnx"]).is_file()
    assert (
        Predictor.from_files(run.export_dir / EXPORT_FILES["onnx"]).labels
        == Predictor.from_run(run.path).labels
    )


@pytest.mark.slow
def test_an_export_that_fails_says_why_and_leaves_the_run_usable(deferred, tmp_path) -> None:
    run = RunDir(shutil.copytree(deferred["run"].path, tmp_path / deferred["run"].run_id))
    before = run.tflite_path.read_bytes()
    # a 1 MB file size limit for the export process only: every export that writes more fails
    code = (
        "import resource, runpy, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "sys.argv[0] = 'engine'\n"
        "runpy.run_module('engine', run_name='__main__', alter_sys=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "export", "--run_dir", str(run.path), "--formats", "onnx"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr.split("\n\n")[-1]
    assert "disk is full or a file size limit was reached" in proc.stderr
    state = export_state(run)
    assert state["state"] == "failed" and state["errors"], state
    assert run.read_status()["state"] == "done"
    assert run.tflite_path.read_bytes() == before
    assert not [p for p in run.export_dir.iterdir() if p.name.startswith(".")], "no half files"
    assert Predictor.from_run(run.path).predict(_test_photos(run)[0]).probabilities.shape == (3,)
    json.loads(run.status_path.read_text())  # still whole
