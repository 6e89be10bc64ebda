"""engine.serve.export: SavedModel, TFLite float and int8, each scored again on the test split."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.serve.export import export_run
from tests.support.tiny_model import TinyRun

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the session's trained run, exported to every format (the shared run stays as it is)."""
    copy = RunDir(tmp_path_factory.mktemp("export") / tiny_run.run.run_id)
    shutil.copytree(tiny_run.run.path, copy.path)
    results = export_run(copy)
    return {"run": copy, "report": tiny_run.report, "results": results}


def test_every_format_is_written_with_labels(exported) -> None:
    export_dir = Path(exported["run"].export_dir)
    assert (export_dir / "saved_model" / "saved_model.pb").is_file()
    assert (export_dir / "model.tflite").is_file()
    assert (export_dir / "model_int8.tflite").is_file()
    assert (export_dir / "labels.txt").read_text() == exported["run"].labels_path.read_text()


def test_each_export_is_rescored_with_accuracy_size_and_latency(exported) -> None:
    results = exported["results"]
    assert set(results) == {"saved_model", "tflite", "tflite_int8", "onnx"}
    for figures in results.values():
        assert figures["count"] == exported["report"]["count"]
        assert figures["size_bytes"] > 0 and figures["latency_ms"] > 0


def test_float_exports_keep_the_keras_accuracy(exported) -> None:
    keras_accuracy = exported["report"]["accuracy"]
    assert exported["results"]["saved_model"]["accuracy"] == keras_accuracy
    assert exported["results"]["tflite"]["accuracy"] == keras_accuracy


def test_int8_model_is_smaller_than_float(exported) -> None:
    results = exported["results"]
    assert results["tflite_int8"]["size_bytes"] < results["tflite"]["size_bytes"] / 2


def test_report_holds_export_figures_beside_the_keras_model(exported) -> None:
    report = exported["run"].read_report()
    assert report["exports"] == exported["results"]
    assert {"accuracy", "size_bytes", "latency_ms"} <= report["keras"].keys()


def test_unknown_format_is_refused(exported) -> None:
    with pytest.raises(StudioError, match="choose from"):
        export_run(exported["run"], formats=("coreml",))


def test_run_without_model_cannot_be_exported(tmp_path) -> None:
    run = RunDir.create(tmp_path, backbone="efficientnet_lite0")
    with pytest.raises(StudioError, match="no model.keras"):
        export_run(run)
