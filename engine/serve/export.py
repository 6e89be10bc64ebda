"""Exporting a run's model: SavedModel, TFLite float and full-integer int8.

Each exported model is scored again on the test split and timed on single
images, and the figures go into report.json beside the Keras model's, so a
user sees what quantization costs in accuracy, size and speed.

The int8 model is calibrated on prepared images of the training split (up to
`REPRESENTATIVE_COUNT`). Its input and output stay uint8 images and uint8
probabilities; `engine.serve.model_files.LiteModel` converts with the tensors' scales.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import fsutil
from engine.core.errors import StudioError
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.core.rundir import EXPORT_FILES, RunDir
from engine.data.batches import iter_prepared_batches
from engine.data.dataset import Dataset, ImageRecord
from engine.data.geometry import load_prepared
from engine.serve.model_files import KerasModel, LiteModel
from engine.serve.model_info import info_for, tflite_with_info

FORMATS = ("saved_model", "tflite", "tflite_int8")
REPRESENTATIVE_COUNT = 100
LATENCY_RUNS = 20


def _size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _latency_ms(model: Any, image: np.ndarray) -> float:
    """Median warm time of one-image calls, in milliseconds."""
    model(image[None])
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        model(image[None])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def _score(model: Any, images: np.ndarray, truth: np.ndarray, path: Path) -> dict[str, Any]:
    accuracy = 0.0
    if len(images):  # a run without a test split still gets its export, unscored
        probabilities = np.concatenate([model(images[i : i + 32]) for i in range(0, len(images), 32)])
        accuracy = float((probabilities.argmax(axis=1) == truth).mean())
    return {
        "path": str(path),
        "accuracy": round(accuracy, 6),
        "count": len(truth),
        "size_bytes": _size_bytes(path),
        "latency_ms": round(_latency_ms(model, images[0]), 3) if len(images) else None,
    }


def _prepared(
    records: Sequence[ImageRecord], size: int, crop_fraction: float, resample: str
) -> np.ndarray:
    def load(record: ImageRecord) -> np.ndarray:
        return load_prepared(record.path, size, crop_fraction=crop_fraction, resample=resample)

    out: list[np.ndarray] = []
    for _, batch, _failures in iter_prepared_batches(list(records), load):
        if batch is not None:
            out.extend(batch)
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)


def _convert_tflite(
    saved_model: Path, target: Path, representative: np.ndarray | None, info: dict[str, Any]
) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if representative is not None:

        def samples():
            for image in representative:
                yield [image[None].astype(np.uint8)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    data = converter.convert()
    fsutil.atomic_write_bytes(target, tflite_with_info(data, info))


def export_run(
    run: RunDir,
    *,
    formats: Sequence[str] = FORMATS,
    dataset: Dataset | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, dict[str, Any]]:
    """Export a finished run's model and score every export on the test split.

    Writes `export/saved_model/`, `export/model.tflite`,
    `export/model_int8.tflite` (as asked) and `export/labels.txt`, then adds
    `exports` (and the Keras model's size and latency under `keras`) to
    report.json.

    Args:
        run: the run folder (with model.keras, labels.txt, config.json).
        formats: any of "saved_model", "tflite", "tflite_int8". Defaults to all three.
        dataset: the run's `Dataset`. Defaults to None (scanned again from
            the run's config.json).
        progress: called with `Progress("export", ...)`, one unit per format.
            Defaults to None.

    Returns:
        Per format: `path`, `accuracy`, `count`, `size_bytes`, `latency_ms`.

    Raises:
        StudioError: an unknown format, or a run without a model.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise StudioError(f"formats={list(formats)!r} is not allowed; choose from {list(FORMATS)}")
    if not run.model_path.exists():
        raise StudioError(f"run {run.run_id} has no model.keras yet; export a finished run")
    import keras

    config = run.read_config()
    labels = run.read_labels()
    info = info_for(labels, config)  # every export carries its labels and preprocessing
    size = int(config["input_size"])
    crop, resample = float(config["crop_fraction"]), str(config["resample"])
    if dataset is None:
        from engine.data.scan import scan_dataset

        dataset = scan_dataset(
            config["image_dir"],
            validation_percentage=config.get("validation_percentage", 10),
            testing_percentage=config.get("testing_percentage", 10),
        )
    index_of = {label: i for i, label in enumerate(labels)}
    test_records = [r for r in dataset.split("test") if r.label in index_of]
    test_images = _prepared(test_records, size, crop, resample)
    truth = np.asarray([index_of[r.label] for r in test_records], dtype=np.int64)
    tracker = ProgressTracker("export", len(formats) + 1, progress, unit="models")

    results: dict[str, dict[str, Any]] = {}
    keras_figures = _score(KerasModel(run.model_path), test_images, truth, run.model_path)
    tracker.advance()
    export_dir = Path(run.export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=export_dir))
    try:
        saved_model = scratch / "saved_model"
        model = keras.saving.load_model(run.model_path, compile=False)
        # The float TFLite alone (what every run writes) converts straight from
        # Keras: about 3 s less than writing a SavedModel first.
        needs_saved_model = "saved_model" in formats or "tflite_int8" in formats
        if needs_saved_model:
            model.export(str(saved_model), format="tf_saved_model", verbose=False)
        if "saved_model" in formats:
            target = export_dir / EXPORT_FILES["saved_model"]
            with fsutil.atomic_path(target, replace_folder=True) as tmp:
                shutil.copytree(saved_model, tmp)
            results["saved_model"] = _score(KerasModel(target), test_images, truth, target)
            tracker.advance()
        if "tflite" in formats:
            target = export_dir / EXPORT_FILES["tflite"]
            if needs_saved_model:
                _convert_tflite(saved_model, target, None, info)
            else:
                from engine.models.loading import convert_to_tflite

                fsutil.atomic_write_bytes(target, tflite_with_info(convert_to_tflite(model), info))
            results["tflite"] = _score(LiteModel(target), test_images, truth, target)
            tracker.advance()
        if "tflite_int8" in formats:
            train_records = list(dataset.split("train"))
            rng = np.random.default_rng(0)
            chosen = rng.permutation(len(train_records))[:REPRESENTATIVE_COUNT]
            representative = _prepared([train_records[i] for i in chosen], size, crop, resample)
            target = export_dir / EXPORT_FILES["tflite_int8"]
            _convert_tflite(saved_model, target, representative, info)
            results["tflite_int8"] = _score(LiteModel(target), test_images, truth, target)
            tracker.advance()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    run_labels = run.labels_path.read_bytes()
    fsutil.atomic_write_bytes(export_dir / "labels.txt", run_labels)
    tracker.finish()

    report = run.read_report()
    report["keras"] = {**report.get("keras", {}), **keras_figures}
    report["exports"] = {**report.get("exports", {}), **results}
    run.write_report(report)
    return results
