"""Exporting a run's model: SavedModel, TFLite float and int8, ONNX; each scored again.

Each exported model is scored again on the test split, timed on single
images and compared with the run's first model (its `export/model.tflite`,
else `model.keras`): the figures go into report.json under `exports`, so a
user sees what a format costs in accuracy, size and speed, and that it
answers as the model it came from (`top1_agreement`, and the largest
probability difference).

Every format is written and recorded on its own: report.json is updated as
each one lands, and a format that fails is recorded with its error while the
others go on (the run stays usable on what it has).

- `tflite`: the run's float `.tflite`. A run trained on a LiteRT backbone
  already has one (assembled at training time, `engine.serve.assemble`): it is
  scored, not converted again. Otherwise `model.keras` is converted.
- `saved_model`: `model.export(format="tf_saved_model")`.
- `tflite_int8`: full-integer quantization, calibrated on prepared images of
  the training split (up to `REPRESENTATIVE_COUNT`); its input and output stay
  uint8 images and uint8 probabilities (`LiteModel` converts with the scales).
- `onnx`: Keras's own exporter (`model.export(format="onnx")`, tf2onnx under
  the TensorFlow backend), run by onnxruntime; labels and preprocessing ride
  in its metadata as in every other format.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import fsutil
from engine.core.errors import StudioError, disk_full_error
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.core.rundir import EXPORT_FILES, RunDir
from engine.data.batches import iter_prepared_batches
from engine.data.dataset import Dataset, ImageRecord
from engine.data.geometry import load_prepared
from engine.serve.model_files import KerasModel, LiteModel, OnnxModel
from engine.serve.model_info import info_for, onnx_with_info, tflite_with_info
from engine.serve.unknown import read_rules

FORMATS = ("saved_model", "tflite", "tflite_int8", "onnx")
# What needs the Keras model (and so TensorFlow) to be made.
KERAS_FORMATS = ("saved_model", "tflite_int8", "onnx")
REPRESENTATIVE_COUNT = 100
LATENCY_RUNS = 20
ONNX_OPSET = 15

FailureCallback = Callable[[str, BaseException], None]


def _size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def latency_ms(model: Any, image: np.ndarray) -> float:
    """Median warm time of one-image calls, in milliseconds."""
    model(image[None])
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        model(image[None])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def probabilities_of(model: Any, images: np.ndarray) -> np.ndarray:
    """A model's probabilities for prepared images, 32 at a time (`(0, 0)` for none)."""
    if not len(images):
        return np.zeros((0, 0), np.float32)
    return np.concatenate([model(images[i : i + 32]) for i in range(0, len(images), 32)])


def _score(
    model: Any, images: np.ndarray, truth: np.ndarray, path: Path, reference: np.ndarray | None
) -> tuple[dict[str, Any], np.ndarray]:
    probabilities = probabilities_of(model, images)
    accuracy = float((probabilities.argmax(axis=1) == truth).mean()) if len(images) else 0.0
    figures: dict[str, Any] = {
        "path": str(path),
        "accuracy": round(accuracy, 6),
        "count": len(truth),
        "size_bytes": _size_bytes(path),
        "latency_ms": round(latency_ms(model, images[0]), 3) if len(images) else None,
    }
    if reference is not None and len(images) and reference.shape == probabilities.shape:
        figures["top1_agreement"] = round(
            float((reference.argmax(axis=1) == probabilities.argmax(axis=1)).mean()), 6
        )
        figures["max_probability_difference"] = float(np.max(np.abs(reference - probabilities)))
    return figures, probabilities


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


def _write_onnx(model: Any, target: Path, size: int, info: dict[str, Any]) -> None:
    """The Keras model through Keras's own ONNX exporter, carrying the info, written atomically."""
    model(np.zeros((1, size, size, 3), np.uint8))  # the exporter wants a model that has been called
    with fsutil.atomic_path(target) as tmp:
        # tf2onnx prints its progress and warns about numpy aliases: neither is the user's business.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model.export(str(tmp), format="onnx", verbose=False, opset_version=ONNX_OPSET)
        onnx_with_info(tmp, info)


class _Exporter:
    """One `export_run` call: the test photos prepared once, each format written and scored."""

    def __init__(self, run: RunDir, dataset: Dataset | None, on_failure: FailureCallback | None) -> None:
        self.run = run
        self.config = run.read_config()
        self.labels = run.read_labels()
        rules = read_rules(run.path)  # every export carries labels, preprocessing and the rules
        self.info = info_for(self.labels, self.config, None if rules is None else rules.as_dict())
        self.size = int(self.config["input_size"])
        self.crop = float(self.config["crop_fraction"])
        self.resample = str(self.config["resample"])
        self.dataset = dataset if dataset is not None else self._scan()
        index_of = {label: i for i, label in enumerate(self.labels)}
        test_records = [r for r in self.dataset.split("test") if r.label in index_of]
        self.test_images = _prepared(test_records, self.size, self.crop, self.resample)
        self.truth = np.asarray([index_of[r.label] for r in test_records], dtype=np.int64)
        self.export_dir = Path(run.export_dir)
        self.reference: np.ndarray | None = None
        self._keras: Any = None
        self._saved_model: Path | None = None
        self._on_failure = on_failure

    def _scan(self) -> Dataset:
        from engine.data.scan import scan_dataset

        return scan_dataset(
            self.config["image_dir"],
            validation_percentage=self.config.get("validation_percentage", 10),
            testing_percentage=self.config.get("testing_percentage", 10),
        )

    def keras_model(self) -> Any:
        if self._keras is None:
            import keras

            self._keras = keras.saving.load_model(self.run.model_path, compile=False)
        return self._keras

    def saved_model(self, scratch: Path) -> Path:
        """The model as a SavedModel in the scratch folder (what the converters start from), once."""
        if self._saved_model is None:
            path = scratch / "saved_model"
            self.keras_model().export(str(path), format="tf_saved_model", verbose=False)
            self._saved_model = path
        return self._saved_model

    def set_reference(self) -> None:
        """The run's own model's answers (its float TFLite, else model.keras): what exports must match."""
        primary = self.run.tflite_path if self.run.tflite_path.is_file() else self.run.model_path
        model = LiteModel(primary) if primary == self.run.tflite_path else KerasModel(primary)
        self.reference = probabilities_of(model, self.test_images)

    def score(self, model: Any, path: Path) -> dict[str, Any]:
        return _score(model, self.test_images, self.truth, path, self.reference)[0]

    def write(self, name: str, scratch: Path) -> dict[str, Any]:
        """Write format `name` (unless already there, for the float TFLite) and score it."""
        target = self.export_dir / EXPORT_FILES[name]
        if name == "tflite":
            if not target.is_file():
                from engine.models.loading import convert_to_tflite

                converted = convert_to_tflite(self.keras_model())
                fsutil.atomic_write_bytes(target, tflite_with_info(converted, self.info))
            return self.score(LiteModel(target), target)
        if name == "saved_model":
            source = self.saved_model(scratch)
            with fsutil.atomic_path(target, replace_folder=True) as tmp:
                shutil.copytree(source, tmp)
            return self.score(KerasModel(target), target)
        if name == "tflite_int8":
            train_records = list(self.dataset.split("train"))
            chosen = np.random.default_rng(0).permutation(len(train_records))[:REPRESENTATIVE_COUNT]
            representative = _prepared(
                [train_records[i] for i in chosen], self.size, self.crop, self.resample
            )
            _convert_tflite(self.saved_model(scratch), target, representative, self.info)
            return self.score(LiteModel(target), target)
        _write_onnx(self.keras_model(), target, self.size, self.info)
        return self.score(OnnxModel(target), target)

    def failed(self, name: str, exc: BaseException) -> dict[str, Any]:
        if self._on_failure is not None:
            self._on_failure(name, exc)
        full = disk_full_error(exc)
        if full is not None:
            return {"error": str(full)}
        if isinstance(exc, StudioError):
            return {"error": str(exc)}
        first = (str(exc).splitlines() or [""])[0][:300]
        return {"error": f"{type(exc).__name__}: {first}" if first else type(exc).__name__}


def export_run(
    run: RunDir,
    *,
    formats: Sequence[str] = FORMATS,
    dataset: Dataset | None = None,
    progress: ProgressCallback | None = None,
    on_failure: FailureCallback | None = None,
) -> dict[str, dict[str, Any]]:
    """Export a finished run's model and score every export on the test split.

    Writes `export/model.tflite`, `export/saved_model/`,
    `export/model_int8.tflite`, `export/model.onnx` (as asked) and
    `export/labels.txt`. report.json gets each format's figures under
    `exports` as soon as it is done (or its `error` when it failed), and the
    Keras model's size and latency under `keras` the first time it is scored.
    The run's own model (its float TFLite when there is one, else the Keras
    model) is the reference every export is compared with.

    Args:
        run: the run folder (with labels.txt, config.json, and model.keras or
            export/model.tflite).
        formats: any of `FORMATS`. Defaults to all of them.
        dataset: the run's `Dataset`. Defaults to None (scanned again from
            the run's config.json).
        progress: called with `Progress("export", ...)`, one unit per model.
            Defaults to None.
        on_failure: called with a format's name and what it raised, when it
            fails (to log the traceback). Defaults to None.

    Returns:
        Per format: `path`, `accuracy`, `count`, `size_bytes`, `latency_ms`,
        `top1_agreement`, `max_probability_difference`; or `error`.

    Raises:
        StudioError: an unknown format, or a run with neither model.keras nor a
            float TFLite (nothing to export from).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise StudioError(f"formats={list(formats)!r} is not allowed; choose from {list(FORMATS)}")
    has_keras = run.model_path.exists()
    if not has_keras and not ("tflite" in formats and run.tflite_path.is_file()):
        raise StudioError(
            f"run {run.run_id} has no model.keras yet; export a finished run (its model.keras "
            "is written by the follow-up export: `python -m engine export --run_dir RUN`)"
        )
    ordered = [f for f in FORMATS if f in formats]
    exporter = _Exporter(run, dataset, on_failure)
    report = run.read_report()
    score_keras = has_keras and "latency_ms" not in (report.get("keras") or {})
    tracker = ProgressTracker("export", len(ordered) + int(score_keras), progress, unit="models")
    exporter.export_dir.mkdir(parents=True, exist_ok=True)
    exporter.set_reference()
    results: dict[str, dict[str, Any]] = {}
    with fsutil.temp_folder(".export-", exporter.export_dir) as scratch:
        for name in ordered:
            if name in KERAS_FORMATS and not has_keras:
                results[name] = {"error": "the run has no model.keras to export from"}
            else:
                try:
                    results[name] = exporter.write(name, scratch)
                except Exception as exc:  # noqa: BLE001 - one format's failure must not end the others
                    results[name] = exporter.failed(name, exc)
            _record(run, exports={name: results[name]})
            tracker.advance(1, format=name)
        if score_keras:
            _record(run, keras=exporter.score(KerasModel(run.model_path), run.model_path))
            tracker.advance(1, format="keras")
    fsutil.atomic_write_bytes(exporter.export_dir / "labels.txt", run.labels_path.read_bytes())
    if tracker.done < tracker.total:
        tracker.finish()
    return results


def _record(run: RunDir, **sections: dict[str, Any]) -> None:
    """Merge figures into report.json's sections (`exports`, `keras`), re-read so nothing is lost."""
    report = run.read_report()
    for key, figures in sections.items():
        report[key] = {**(report.get(key) or {}), **figures}
    run.write_report(report)
