"""Retraining the last layer: retrain.py's loop, with live step events.

`retrain(config, run)` scans the dataset, computes (or reads cached)
bottlenecks, trains retrain.py's head (a softmax layer on the features, with
optional dropout) on random batches of cached features, evaluates on the test
split, and writes everything into the run directory: `config.json`,
`events.jsonl` (a `step` event every step), `status.json`, `model.keras`
(backbone + head, RGB uint8 in, probabilities out), `labels.txt`,
`report.json` and TensorBoard logs under `tb/`.

Two paths bypass the cache, as in retrain.py: augmentation flags compute the
training features on the fly from distorted images, and fine-tuning the last
backbone blocks trains the backbone and head together on images.

The step loop is a `tf.function` on in-memory features with stateless random
sampling keyed by (seed, step), so a run is reproducible from its seed and
4,000 steps take seconds on a CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import fsutil
from engine.errors import StudioError
from engine.evaluation import evaluate, format_report
from engine.progress import Progress, ProgressCallback

LR_SCHEDULES = ("constant", "cosine")
CLASS_WEIGHTS = ("none", "balanced")
RUNTIMES = ("litert", "tensorflow")
EVENT_PROGRESS_INTERVAL_S = 1.0
STATUS_INTERVAL_S = 1.0
SAMPLES_PER_CLASS_IN_GRID = 4

EventCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    """Every setting of a retraining run; names and defaults follow retrain.py.

    Args:
        image_dir: folder with one sub-folder of images per class. Defaults to
            None (the generated demo dataset).
        architecture: backbone name (`engine.backbones.list_backbones`).
            Defaults to None (`engine.backbones.DEFAULT_BACKBONE`).
        image_size: input side; one of the backbone's sizes. Defaults to None
            (the backbone's default).
        how_many_training_steps: training steps. Defaults to 4000.
        epochs: when set, train this many passes over the training split instead
            of a step count. Defaults to None.
        learning_rate: plain gradient descent rate for the head. Defaults to 0.01.
        lr_schedule: "constant" or "cosine" (decays to 0 at the last step).
            Defaults to "constant".
        testing_percentage: share of images in the test split. Defaults to 10.
        validation_percentage: share of images in the validation split. Defaults to 10.
        eval_step_interval: steps between validation evaluations. Defaults to 10.
        train_batch_size: images per training step. Defaults to 100.
        test_batch_size: test images to score at the end; -1 = all. Defaults to -1.
        validation_batch_size: validation images per evaluation; -1 = all.
            Defaults to 100.
        dropout: dropout rate before the softmax layer. Defaults to 0.0.
        class_weights: "none", or "balanced" to weight the loss by inverse
            class frequency. Defaults to "none".
        flip_left_right: randomly mirror training images. Defaults to False.
        random_crop: percent margin to crop randomly. Defaults to 0.
        random_scale: percent to scale up randomly. Defaults to 0.
        random_brightness: percent to scale pixel values up or down randomly.
            Defaults to 0.
        fine_tune_blocks: unfreeze this many last backbone blocks (BatchNorm
            stays frozen). Defaults to 0 (head only).
        fine_tune_learning_rate: learning rate for the unfrozen backbone
            weights. Defaults to 0.0001.
        seed: makes the run reproducible. Defaults to None (a random seed,
            recorded in config.json).
        bottleneck_dir: folder for the bottleneck cache. Defaults to None
            (`cache_dir()/bottlenecks`).
        summaries_dir: also copy the TensorBoard logs to `<dir>/<run_id>`.
            Defaults to None.
        output_graph: also copy model.keras here. Defaults to None.
        output_labels: also copy labels.txt here. Defaults to None.
        print_misclassified_test_images: print every misclassified test
            image. Defaults to False.
        export: also export SavedModel and int8 TFLite at the end (the float
            TFLite, `export/model.tflite`, is written by every run). Defaults to False.
        runtime: preferred feature runtime, "litert" or "tensorflow".
            Defaults to "litert".
        weights: backbone weights: "imagenet", or None for random weights
            (tests). Defaults to "imagenet".
    """

    image_dir: str | None = None
    architecture: str | None = None
    image_size: int | None = None
    how_many_training_steps: int = 4000
    epochs: float | None = None
    learning_rate: float = 0.01
    lr_schedule: str = "constant"
    testing_percentage: int = 10
    validation_percentage: int = 10
    eval_step_interval: int = 10
    train_batch_size: int = 100
    test_batch_size: int = -1
    validation_batch_size: int = 100
    dropout: float = 0.0
    class_weights: str = "none"
    flip_left_right: bool = False
    random_crop: int = 0
    random_scale: int = 0
    random_brightness: int = 0
    fine_tune_blocks: int = 0
    fine_tune_learning_rate: float = 1e-4
    seed: int | None = None
    bottleneck_dir: str | None = None
    summaries_dir: str | None = None
    output_graph: str | None = None
    output_labels: str | None = None
    print_misclassified_test_images: bool = False
    export: bool = False
    runtime: str = "litert"
    weights: str | None = "imagenet"

    @property
    def augmenting(self) -> bool:
        """True when any distortion flag is on (features are computed per step)."""
        return bool(
            self.flip_left_right or self.random_crop or self.random_scale or self.random_brightness
        )

    def validate(self) -> None:
        """Check every setting; the error names the flag, the value and what is allowed.

        Raises:
            StudioError: on the first bad setting.
        """

        def need(ok: bool, flag: str, value: Any, allowed: str) -> None:
            if not ok:
                raise StudioError(f"--{flag}={value!r} is not allowed; {allowed}")

        need(self.how_many_training_steps >= 1, "how_many_training_steps",
             self.how_many_training_steps, "use 1 or more")  # fmt: skip
        need(self.epochs is None or self.epochs > 0, "epochs", self.epochs, "use a positive number")
        need(self.learning_rate > 0, "learning_rate", self.learning_rate, "use a positive number")
        need(self.fine_tune_learning_rate > 0, "fine_tune_learning_rate",
             self.fine_tune_learning_rate, "use a positive number")  # fmt: skip
        need(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule,
             f"choose one of {', '.join(LR_SCHEDULES)}")  # fmt: skip
        need(self.class_weights in CLASS_WEIGHTS, "class_weights", self.class_weights,
             f"choose one of {', '.join(CLASS_WEIGHTS)}")  # fmt: skip
        need(self.runtime in RUNTIMES, "runtime", self.runtime, f"choose one of {', '.join(RUNTIMES)}")
        for flag in ("testing_percentage", "validation_percentage"):
            value = getattr(self, flag)
            need(0 <= value < 100, flag, value, "use 0 to 99")
        need(self.testing_percentage + self.validation_percentage < 100, "validation_percentage",
             self.validation_percentage, "validation + testing percentages must stay under 100")  # fmt: skip
        need(
            self.eval_step_interval >= 1, "eval_step_interval", self.eval_step_interval, "use 1 or more"
        )
        need(self.train_batch_size >= 1, "train_batch_size", self.train_batch_size, "use 1 or more")
        for flag in ("test_batch_size", "validation_batch_size"):
            value = getattr(self, flag)
            need(value == -1 or value >= 1, flag, value, "use -1 (all) or 1 or more")
        need(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "use 0 to below 1")
        for flag in ("random_crop", "random_scale", "random_brightness"):
            value = getattr(self, flag)
            need(0 <= value <= 100, flag, value, "use a percentage from 0 to 100")
        need(self.fine_tune_blocks >= 0, "fine_tune_blocks", self.fine_tune_blocks, "use 0 or more")
        need(self.image_size is None or self.image_size >= 8, "image_size", self.image_size,
             "use one of the backbone's input sizes")  # fmt: skip

    def total_steps(self, train_count: int) -> int:
        """Steps to run: `how_many_training_steps`, or the epochs' worth of batches."""
        if self.epochs is None:
            return self.how_many_training_steps
        return max(1, math.ceil(self.epochs * train_count / self.train_batch_size))

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


class RunCancelled(Exception):
    """Raised inside the loop when the run's cancel flag is seen."""


def learning_rate_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """The head's learning rate at 1-based `step`.

    Args:
        config: the run settings (`learning_rate`, `lr_schedule`).
        step: the step, 1..total_steps.
        total_steps: steps in the run.

    Returns:
        The rate.
    """
    if config.lr_schedule == "cosine":
        progress = (step - 1) / max(1, total_steps)
        return 0.5 * config.learning_rate * (1.0 + math.cos(math.pi * progress))
    return config.learning_rate


def class_weight_vector(counts: list[int], mode: str) -> np.ndarray:
    """Loss weight per class.

    Args:
        counts: training images per class.
        mode: "none" (all 1) or "balanced" (total / (classes * count)).

    Returns:
        float32 weights, one per class.

    Raises:
        ValueError: for an unknown mode.
    """
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"class_weights={mode!r} is unknown; choose one of {CLASS_WEIGHTS}")
    counts_arr = np.asarray(counts, dtype=np.float64)
    if mode == "none" or counts_arr.sum() == 0:
        return np.ones(len(counts), dtype=np.float32)
    weights = counts_arr.sum() / (len(counts) * np.maximum(counts_arr, 1))
    return weights.astype(np.float32)


def distort(
    image: np.ndarray,
    size: int,
    rng: np.random.Generator,
    *,
    flip_left_right: bool = False,
    random_crop: int = 0,
    random_scale: int = 0,
    random_brightness: int = 0,
) -> np.ndarray:
    """retrain.py's distortions on one prepared image.

    The image is scaled up by `1 + crop%` times a random `1..1+scale%`, a
    `size` square is cut at a random place, optionally mirrored, and its
    pixel values multiplied by a random `1 ± brightness%`.

    Args:
        image: uint8 `(H, W, 3)`, already prepared at `size` or larger.
        size: the output side.
        rng: the random generator.
        flip_left_right: mirror half the time. Defaults to False.
        random_crop: percent margin to crop. Defaults to 0.
        random_scale: percent to scale up at most. Defaults to 0.
        random_brightness: percent brightness change at most. Defaults to 0.

    Returns:
        uint8 `(size, size, 3)`.
    """
    from PIL import Image

    scale = (1.0 + random_crop / 100.0) * rng.uniform(1.0, 1.0 + random_scale / 100.0)
    side = max(size, round(size * scale))
    out = image
    if out.shape[0] != side or out.shape[1] != side:
        out = np.asarray(Image.fromarray(out).resize((side, side), Image.Resampling.BILINEAR))
    if side > size:
        top = int(rng.integers(0, side - size + 1))
        left = int(rng.integers(0, side - size + 1))
        out = out[top : top + size, left : left + size]
    if flip_left_right and rng.random() < 0.5:
        out = out[:, ::-1]
    if random_brightness:
        factor = rng.uniform(1.0 - random_brightness / 100.0, 1.0 + random_brightness / 100.0)
        out = np.clip(out.astype(np.float32) * factor, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- helpers


class _Echo:
    """Prints retrain.py-style lines (or drops them)."""

    def __init__(self, write: Callable[[str], None] | None) -> None:
        self._write = write

    def __call__(self, line: str) -> None:
        if self._write is not None:
            self._write(line)


class _EventSink:
    """Sends events to events.jsonl and the caller's callback; throttles progress."""

    def __init__(self, run: Any, on_event: EventCallback | None, progress: ProgressCallback | None):
        self._run = run
        self._on_event = on_event
        self._progress = progress
        self._last_progress: dict[str, float] = {}

    def emit(self, event: dict[str, Any]) -> None:
        event = {**event, "time": round(time.time(), 3)}
        self._run.append_event(event)
        if self._on_event is not None:
            self._on_event(event)

    def phase(self, name: str) -> None:
        self.emit({"event": "phase", "phase": name})

    def on_progress(self, p: Progress) -> None:
        if self._progress is not None:
            self._progress(p)
        finished = p.total > 0 and p.done >= p.total
        last = self._last_progress.get(p.phase)
        if finished or last is None or p.elapsed_s - last >= EVENT_PROGRESS_INTERVAL_S:
            self._last_progress[p.phase] = p.elapsed_s
            self.emit({"event": "progress", **p.as_dict()})


class _CancelFlag:
    """The run's cancel flag file, plus SIGTERM while training in the main thread."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self._set = False

    def requested(self) -> bool:
        if not self._set and self._run.cancel_requested():
            self._set = True
        return self._set

    @contextlib.contextmanager
    def sigterm(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            self._set = True
            with contextlib.suppress(OSError):
                self._run.request_cancel()

        previous = signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import engine

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "engine": getattr(engine, "__version__", "unknown"),
        "numpy": np.__version__,
    }


def _backbone_dict(backbone: Any, input_size: int) -> dict[str, Any]:
    info = dataclasses.asdict(backbone) if dataclasses.is_dataclass(backbone) else {}
    info.update(
        {
            "name": backbone.name,
            "input_size": input_size,
            "feature_size": backbone.feature_size,
            "crop_fraction": backbone.crop_fraction,
            "resample": backbone.resample,
            "normalization": backbone.normalization,
        }
    )
    return info


def _log_failure(run: Any, exc: BaseException) -> None:
    """Append the traceback to train.log (the job runner may also write there)."""
    with contextlib.suppress(OSError), open(run.log_path, "a", encoding="utf-8") as handle:
        handle.write("".join(traceback.format_exception(exc)))


class _KerasFeatures:
    """Features from an in-process Keras extractor.

    Used when the final model must embed exactly the extractor that made the
    features: random test weights, or after fine-tuning.
    """

    runtime = "tensorflow"
    notice = None

    def __init__(self, extractor: Any, backbone: Any, input_size: int) -> None:
        import tensorflow as tf

        self.backbone = backbone
        self.input_size = input_size
        self._fn = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)

    def features(self, batch_uint8: np.ndarray) -> np.ndarray:
        return self._fn(batch_uint8).numpy().astype(np.float32)


# --------------------------------------------------------------------------- the run


class _Training:
    """One retraining run; `retrain` is the public door."""

    def __init__(
        self,
        config: TrainConfig,
        run: Any,
        on_event: EventCallback | None,
        progress: ProgressCallback | None,
        echo: Callable[[str], None] | None,
    ) -> None:
        self.config = config
        self.run = run
        self.sink = _EventSink(run, on_event, progress)
        self.echo = _Echo(echo)
        self.cancel = _CancelFlag(run)
        self.step = 0
        self.summary: dict[str, Any] = {}

    # ------------------------------------------------------------------ setup

    def _scan(self) -> Any:
        from engine import datasets

        self.sink.phase("scan")
        root = self.config.image_dir
        if root is None:
            root = str(datasets.ensure_demo_dataset(progress=self.sink.on_progress))
            self.config.image_dir = root
        if not Path(root).is_dir():
            raise StudioError(
                f"--image_dir {root!r} is not a folder; give a folder with one sub-folder per class"
            )
        dataset = datasets.scan_dataset(
            root,
            validation_percentage=self.config.validation_percentage,
            testing_percentage=self.config.testing_percentage,
            progress=self.sink.on_progress,
        )
        dataset.require_trainable()
        if not dataset.split("train"):
            raise StudioError("the training split is empty; add images or lower the percentages")
        if not dataset.split("test") and self.config.testing_percentage > 0:
            raise StudioError(
                "the test split is empty; add a few more images per class or raise --testing_percentage"
            )
        return dataset

    def _resolve_backbone(self) -> tuple[Any, int]:
        from engine import backbones

        name = self.config.architecture or backbones.DEFAULT_BACKBONE
        backbone = backbones.get_backbone(name)
        self.config.architecture = backbone.name
        size = self.config.image_size or backbone.input_size
        allowed = tuple(getattr(backbone, "input_sizes", ()) or (backbone.input_size,))
        if size not in allowed:
            raise StudioError(
                f"--image_size={size} is not available for {backbone.name}; choose one of "
                f"{', '.join(map(str, allowed))}"
            )
        self.config.image_size = size
        if self.config.weights == "imagenet" and not backbone.weights_available():
            raise StudioError(
                f"the weights of {backbone.name} are not available offline; {backbone.weights_hint()}"
            )
        return backbone, size

    # ------------------------------------------------------------------ main

    def run_all(self) -> dict[str, Any]:
        config = self.config
        config.validate()
        if config.seed is None:
            config.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        self.run.write_status("running", pid=os.getpid(), step=0)
        dataset = self._scan()
        backbone, size = self._resolve_backbone()

        import keras

        keras.utils.set_random_seed(config.seed)
        from engine import backbones

        extractor = backbones.build_feature_extractor(
            backbone.name, input_size=size, weights=config.weights
        )
        if config.weights == "imagenet" and config.fine_tune_blocks == 0:
            runtime = backbones.load_feature_runtime(
                backbone.name, input_size=size, prefer=config.runtime, weights=config.weights
            )
        else:
            runtime = _KerasFeatures(extractor, backbone, size)
        # TensorFlow decodes its own input (tf.data) so that path is TensorFlow end to end.
        decoder = "tf" if runtime.runtime == "tensorflow" else "pil"
        labels = list(dataset.labels)
        self.run.write_config(
            {
                **config.as_dict(),
                "run_id": self.run.run_id,
                "labels": labels,
                "dataset": {**dataset.summary(), "root": str(dataset.root)},
                "dataset_fingerprint": dataset.fingerprint,
                "backbone": _backbone_dict(backbone, size),
                "input_size": size,
                "crop_fraction": backbone.crop_fraction,
                "resample": backbone.resample,
                "runtime": runtime.runtime,
                "runtime_notice": getattr(runtime, "notice", None),
                "bottleneck_decoder": decoder,
                "versions": _versions(),
                "command": sys.argv,
            }
        )
        self.run.write_status("running", pid=os.getpid(), architecture=backbone.name)
        if getattr(runtime, "notice", None):
            self.echo(f"note: {runtime.notice}")

        index_of = {label: i for i, label in enumerate(labels)}
        splits = {name: list(dataset.split(name)) for name in ("train", "validation", "test")}
        skipped: list[tuple[str, str]] = []
        features: dict[str, np.ndarray] = {}
        if config.fine_tune_blocks == 0:
            features, splits, skipped = self._bottlenecks(splits, runtime, backbone, decoder)
        truth = {
            name: np.asarray([index_of[r.label] for r in recs], dtype=np.int64)
            for name, recs in splits.items()
        }
        if not len(truth["train"]):
            raise StudioError("no training image could be decoded; check the dataset's problems list")

        head = _Head(len(labels), backbone.feature_size, config.dropout, config.seed)
        trainer = _StepLoop(self, head, extractor, runtime, backbone, size, splits, truth, features)
        writers = _Summaries(self.run.tb_dir, labels)
        try:
            writers.write_samples(splits["train"], labels, backbone, size)
            self.sink.phase("train")
            try:
                trainer.train(writers)
                cancelled = False
            except RunCancelled:
                cancelled = True
            model = _assemble_model(extractor, head, backbone.name, size)
            with fsutil.atomic_path(self.run.model_path) as tmp:
                model.save(tmp)
            self.run.write_labels(labels)
            if cancelled:
                self.run.write_status("cancelled", step=self.step)
                self.echo(f"Cancelled at step {self.step}; the model so far is saved.")
                return {"cancelled": True, "step": self.step}

            self.sink.phase("evaluate")
            test_recs, test_truth, probabilities = trainer.test_predictions()
            report = evaluate(
                labels, test_truth, probabilities, paths=[str(r.rel_path) for r in test_recs]
            )
            writers.write_final(report, trainer.steps, head, config, self.run.run_id)
        finally:
            writers.close()
        report.update(
            {
                "test_accuracy": report["accuracy"],
                "run_id": self.run.run_id,
                "architecture": backbone.name,
                "runtime": runtime.runtime,
                "steps": trainer.steps,
                "train_seconds": round(trainer.train_seconds, 3),
                "skipped": [{"path": p, "reason": r} for p, r in skipped],
                "keras": {"accuracy": report["accuracy"], "count": report["count"]},
            }
        )
        self.run.write_report(report)
        for line in format_report(report, misclassified=config.print_misclassified_test_images)[:-1]:
            self.echo(line)
        self.sink.emit(
            {"event": "result", "test_accuracy": report["accuracy"], "test_count": report["count"]}
        )

        report = self._export(dataset, report)
        self._copies()
        self.sink.phase("done")
        self.run.write_status("done", step=self.step, test_accuracy=report["accuracy"])
        self.echo(format_report(report)[-1])
        return report

    def _export(self, dataset: Any, report: dict[str, Any]) -> dict[str, Any]:
        """Write the float TFLite (always) and, with --export, every format; echo the figures."""
        from engine import export

        self.sink.phase("export")
        formats = export.FORMATS if self.config.export else ("tflite",)
        try:
            # The float TFLite is always written, so predicting never needs TensorFlow.
            results = export.export_run(
                self.run, formats=formats, dataset=dataset, progress=self.sink.on_progress
            )
        except Exception as exc:
            if self.config.export:
                raise
            # Not asked for: the run stays usable on model.keras; say why LiteRT is missing.
            _log_failure(self.run, exc)
            self.echo(f"note: export/model.tflite was not written ({type(exc).__name__}: {exc})")
            return report
        for name, figures in results.items():
            latency = figures.get("latency_ms")
            self.echo(
                f"Exported {name}: accuracy {figures['accuracy'] * 100:.1f}%, "
                f"{figures['size_bytes'] / 1e6:.2f} MB"
                + (f", {latency:.1f} ms/image" if latency is not None else "")
            )
        return self.run.read_report()

    def _bottlenecks(
        self, splits: dict[str, list[Any]], runtime: Any, backbone: Any, decoder: str
    ) -> tuple[dict[str, np.ndarray], dict[str, list[Any]], list[tuple[str, str]]]:
        from engine import bottlenecks

        config = self.config
        self.sink.phase("bottlenecks")
        cache = None
        if config.weights == "imagenet" or config.bottleneck_dir is not None:
            # random (test) weights differ per build: their features must not
            # be shared with another run unless the user asked for a folder.
            cache = bottlenecks.BottleneckCache.for_runtime(
                runtime,
                config.bottleneck_dir,
                weights=str(config.weights) if config.weights == "imagenet" else f"seed{config.seed}",
                decoder=decoder,
            )
        every = splits["train"] + splits["validation"] + splits["test"]
        result = bottlenecks.extract_bottlenecks(
            every,
            runtime,
            cache=cache,
            progress=self.sink.on_progress,
            should_stop=self.cancel.requested,
            decoder=decoder,
        )
        self.summary["bottlenecks"] = {
            "cached": result.cached,
            "computed": result.computed,
            "damaged": result.damaged,
            "skipped": len(result.skipped),
            "seconds": round(result.seconds, 3),
        }
        self.run.update_status(bottlenecks=self.summary["bottlenecks"])
        kept = set(result.kept)
        row_of = {index: row for row, index in enumerate(result.kept)}
        features: dict[str, np.ndarray] = {}
        new_splits: dict[str, list[Any]] = {}
        offset = 0
        for name in ("train", "validation", "test"):
            recs = splits[name]
            indices = [offset + i for i in range(len(recs)) if offset + i in kept]
            new_splits[name] = [every[i] for i in indices]
            features[name] = (
                result.features[[row_of[i] for i in indices]]
                if indices
                else np.zeros((0, backbone.feature_size), np.float32)
            )
            offset += len(recs)
        for path, reason in result.skipped:
            self.echo(f"skipped {path}: {reason}")
        return features, new_splits, result.skipped

    def _copies(self) -> None:
        config = self.config
        if config.output_graph:
            target = Path(config.output_graph)
            with fsutil.atomic_path(target) as tmp:
                shutil.copyfile(self.run.model_path, tmp)
        if config.output_labels:
            fsutil.atomic_write_bytes(config.output_labels, self.run.labels_path.read_bytes())
        if config.summaries_dir:
            target = Path(config.summaries_dir) / self.run.run_id
            with fsutil.atomic_path(target) as tmp:
                shutil.copytree(self.run.tb_dir, tmp)


class _Head:
    """retrain.py's final layer: optional dropout, then a dense softmax layer."""

    def __init__(self, class_count: int, feature_size: int, dropout: float, seed: int) -> None:
        import keras

        self.dropout = keras.layers.Dropout(dropout, seed=seed, name="dropout") if dropout else None
        # retrain.py's initialisation: tiny truncated-normal weights, zero biases.
        self.dense = keras.layers.Dense(
            class_count,
            name="final_result",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.001, seed=seed),
            bias_initializer="zeros",
        )
        self.dense.build((None, feature_size))

    def logits(self, x: Any, training: bool) -> Any:
        if self.dropout is not None:
            x = self.dropout(x, training=training)
        return self.dense(x)

    @property
    def variables(self) -> list[Any]:
        return [self.dense.kernel, self.dense.bias]


def _assemble_model(extractor: Any, head: _Head, name: str, size: int) -> Any:
    """The run's model: uint8 RGB prepared images in, class probabilities out."""
    import keras

    inputs = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = extractor(inputs, training=False)
    if head.dropout is not None:
        x = head.dropout(x)
    logits = head.dense(x)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=f"retrained_{name}")


class _StepLoop:
    """The training steps, validation and test scoring for one run."""

    def __init__(
        self,
        owner: _Training,
        head: _Head,
        extractor: Any,
        runtime: Any,
        backbone: Any,
        size: int,
        splits: dict[str, list[Any]],
        truth: dict[str, np.ndarray],
        features: dict[str, np.ndarray],
    ) -> None:
        import tensorflow as tf

        self.owner = owner
        self.config = owner.config
        self.head = head
        self.extractor = extractor
        self.runtime = runtime
        self.backbone = backbone
        self.size = size
        self.splits = splits
        self.truth = truth
        self.features = features
        self.steps = self.config.total_steps(len(truth["train"]))
        self.train_seconds = 0.0
        self.fine_tune = self.config.fine_tune_blocks > 0
        counts = np.bincount(truth["train"], minlength=head.dense.units).tolist()
        self.class_weights = tf.constant(class_weight_vector(counts, self.config.class_weights))
        self.seed = int(self.config.seed or 0)
        self.tf = tf
        self._backbone_vars: list[Any] = []
        if self.fine_tune:
            from engine import backbones

            backbones.set_trainable_blocks(extractor, self.config.fine_tune_blocks)
            self._backbone_vars = list(extractor.trainable_variables)

    # ----------------------------------------------------------- tf functions

    def _loss(self, logits: Any, y: Any) -> tuple[Any, Any, Any]:
        tf = self.tf
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        weights = tf.gather(self.class_weights, y)
        loss = tf.reduce_sum(per_example * weights) / tf.reduce_sum(weights)
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=1), y), tf.float32)
        return loss, tf.reduce_mean(per_example), tf.reduce_mean(hits)

    def _build_functions(self, writer: Any) -> None:
        tf = self.tf
        head = self.head
        loop = self

        def apply(variables: list[Any], grads: list[Any], rate: Any) -> None:
            # Plain gradient descent, as retrain.py: no optimizer state to save.
            for var, grad in zip(variables, grads, strict=True):
                var.assign_sub(rate * grad)

        def summarise(step: Any, accuracy: Any, xent: Any, rate: Any) -> None:
            with writer.as_default(step=step):
                tf.summary.scalar("accuracy", accuracy)
                tf.summary.scalar("cross_entropy", xent)
                tf.summary.scalar("learning_rate", rate)

        @tf.function
        def head_step(x: Any, y: Any, step: Any, rate: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                logits = head.logits(x, training=True)
                loss, xent, accuracy = loop._loss(logits, y)
            apply(head.variables, tape.gradient(loss, head.variables), rate)
            summarise(step, accuracy, xent, rate)
            return accuracy, xent

        if not self.fine_tune and not self.config.augmenting:
            feats = tf.constant(self.features["train"])
            labels = tf.constant(self.truth["train"])
            count = int(feats.shape[0])
            batch = self.config.train_batch_size

            @tf.function
            def cached_step(step: Any, rate: Any) -> tuple[Any, Any]:
                index = tf.random.stateless_uniform(
                    [batch], seed=tf.stack([tf.constant(loop.seed, tf.int64), step]),
                    minval=0, maxval=count, dtype=tf.int64,
                )  # fmt: skip
                return head_step(tf.gather(feats, index), tf.gather(labels, index), step, rate)

            self._cached_step = cached_step
        self._head_step = head_step

        if self.fine_tune:
            extractor = self.extractor
            backbone_vars = self._backbone_vars

            @tf.function
            def tune_step(images: Any, y: Any, step: Any, rate: Any, tune_rate: Any):
                with tf.GradientTape() as tape:
                    # training=False keeps BatchNorm in inference mode while
                    # the unfrozen weights still receive gradients.
                    logits = head.logits(extractor(images, training=False), training=True)
                    loss, xent, accuracy = loop._loss(logits, y)
                grads = tape.gradient(loss, head.variables + backbone_vars)
                apply(head.variables, grads[: len(head.variables)], rate)
                apply(backbone_vars, grads[len(head.variables) :], tune_rate)
                summarise(step, accuracy, xent, rate)
                return accuracy, xent

            self._tune_step = tune_step

        @tf.function
        def score(x: Any, y: Any) -> tuple[Any, Any]:
            logits = head.logits(x, training=False)
            _, xent, accuracy = loop._loss(logits, y)
            return accuracy, xent

        self._score = score

    # ----------------------------------------------------------- data

    def _images(self, records: list[Any], rng: np.random.Generator | None) -> np.ndarray:
        from engine.bottlenecks import iter_prepared_batches, load_prepared

        config = self.config
        margin = (1 + config.random_crop / 100) * (1 + config.random_scale / 100)
        base = max(self.size, round(self.size * margin)) if rng is not None else self.size

        def load(record: Any) -> np.ndarray:
            return load_prepared(record, self.backbone, base)

        out: list[np.ndarray] = []
        for _, batch, failures in iter_prepared_batches(records, load, batch_size=len(records) or 1):
            if failures:
                raise StudioError(
                    f"{len(failures)} image(s) could not be decoded during training "
                    f"({records[failures[0][0]].rel_path}: {failures[0][1]}); rescan the dataset"
                )
            if batch is not None:
                out.extend(batch)
        if rng is None:
            return np.stack(out)
        return np.stack(
            [
                distort(
                    image,
                    self.size,
                    rng,
                    flip_left_right=config.flip_left_right,
                    random_crop=config.random_crop,
                    random_scale=config.random_scale,
                    random_brightness=config.random_brightness,
                )
                for image in out
            ]
        )

    def _x_of(self, split: str, rows: np.ndarray) -> Any:
        """Head inputs for rows of a split: cached features, or features of fresh images."""
        if not self.fine_tune:
            return self.features[split][rows]
        images = self._images([self.splits[split][i] for i in rows], None)
        return self.extractor(images, training=False)

    # ----------------------------------------------------------- loop

    def train(self, summaries: _Summaries) -> None:
        tf = self.tf
        config = self.config
        owner = self.owner
        self._build_functions(summaries.train)
        val_count = len(self.truth["validation"])
        start = time.monotonic()
        last_status = 0.0
        train_count = len(self.truth["train"])
        for step in range(1, self.steps + 1):
            if owner.cancel.requested():
                raise RunCancelled
            rate = learning_rate_at(config, step, self.steps)
            step_t = tf.constant(step, tf.int64)
            rate_t = tf.constant(rate, tf.float32)
            if step == 1:
                tf.summary.trace_on(graph=True, profiler=False)
            if self.fine_tune or config.augmenting:
                rng = np.random.default_rng([self.seed, step])
                rows = rng.integers(0, train_count, size=config.train_batch_size)
                y = tf.constant(self.truth["train"][rows])
                records = [self.splits["train"][i] for i in rows]
                images = self._images(records, rng if config.augmenting else None)
                if self.fine_tune:
                    accuracy, xent = self._tune_step(
                        images, y, step_t, rate_t, tf.constant(config.fine_tune_learning_rate)
                    )
                else:
                    x = tf.constant(self.runtime.features(images))
                    accuracy, xent = self._head_step(x, y, step_t, rate_t)
            else:
                accuracy, xent = self._cached_step(step_t, rate_t)
            if step == 1:
                with summaries.train.as_default():
                    tf.summary.trace_export(name="train_step", step=0)
            owner.step = step
            elapsed = time.monotonic() - start
            event: dict[str, Any] = {
                "event": "step",
                "step": step,
                "total_steps": self.steps,
                "train_accuracy": round(float(accuracy), 6),
                "cross_entropy": round(float(xent), 6),
                "learning_rate": rate,
                "images_per_s": round(step * config.train_batch_size / elapsed, 1) if elapsed else 0.0,
                "elapsed_s": round(elapsed, 3),
            }
            if (step % config.eval_step_interval == 0 or step == 1 or step == self.steps) and val_count:
                rows = self._sample_rows(val_count, config.validation_batch_size, step)
                val_acc, val_xent = self._score(
                    self._x_of("validation", rows), tf.constant(self.truth["validation"][rows])
                )
                event["validation_accuracy"] = round(float(val_acc), 6)
                event["validation_cross_entropy"] = round(float(val_xent), 6)
                event["validation_count"] = len(rows)
                summaries.write_validation(step, event, self.head)
                owner.echo(f"Step {step}: Train accuracy = {event['train_accuracy'] * 100:.1f}%")
                owner.echo(f"Step {step}: Cross entropy = {event['cross_entropy']:.6f}")
                owner.echo(
                    f"Step {step}: Validation accuracy = "
                    f"{event['validation_accuracy'] * 100:.1f}% (N={len(rows)})"
                )
                now = time.monotonic()
                if now - last_status >= STATUS_INTERVAL_S or step == self.steps:
                    # status.json is fsynced under a lock: keep it to about once a second
                    last_status = now
                    owner.run.update_status(step=step, total_steps=self.steps)
            owner.sink.emit(event)
        self.train_seconds = time.monotonic() - start

    def _sample_rows(self, count: int, batch: int, step: int) -> np.ndarray:
        if batch == -1 or batch >= count:
            return np.arange(count)
        rng = np.random.default_rng([self.seed, 1, step])
        return np.sort(rng.choice(count, size=batch, replace=False))

    def test_predictions(self) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """Probabilities on the test split (or the sample `test_batch_size` asks for)."""
        tf = self.tf
        count = len(self.truth["test"])
        rows = self._sample_rows(count, self.config.test_batch_size, 0)
        if not len(rows):
            return [], np.zeros(0, np.int64), np.zeros((0, self.head.dense.units), np.float32)
        probabilities = []
        for start in range(0, len(rows), 256):
            chunk = rows[start : start + 256]
            logits = self.head.logits(tf.constant(self._x_of("test", chunk)), training=False)
            probabilities.append(tf.nn.softmax(logits).numpy())
        records = [self.splits["test"][i] for i in rows]
        return records, self.truth["test"][rows], np.concatenate(probabilities)


class _Summaries:
    """TensorBoard writers for a run: `tb/train`, `tb/validation`, hparams in `tb/`."""

    def __init__(self, tb_dir: Path, labels: list[str]) -> None:
        import tensorflow as tf

        self.tf = tf
        self.tb_dir = Path(tb_dir)
        self.train = tf.summary.create_file_writer(str(self.tb_dir / "train"))
        self.validation = tf.summary.create_file_writer(str(self.tb_dir / "validation"))
        self.labels = labels
        self._validation_fn: Any = None

    def write_samples(self, records: list[Any], labels: list[str], backbone: Any, size: int) -> None:
        """A grid of a few training images per class (what the network sees)."""
        from engine.bottlenecks import load_prepared
        from engine.errors import ImageError

        rows = []
        for label in labels:
            tiles = []
            for record in [r for r in records if r.label == label][:SAMPLES_PER_CLASS_IN_GRID]:
                with contextlib.suppress(ImageError):
                    tiles.append(load_prepared(record, backbone, size))
            while len(tiles) < SAMPLES_PER_CLASS_IN_GRID:
                tiles.append(np.zeros((size, size, 3), np.uint8))
            rows.append(np.concatenate(tiles, axis=1))
        grid = np.concatenate(rows, axis=0)
        with self.train.as_default():
            self.tf.summary.image(
                "sample_images", grid[None], step=0, description="rows: " + ", ".join(labels)
            )

    def write_validation(self, step: int, event: dict[str, Any], head: _Head) -> None:
        tf = self.tf
        if self._validation_fn is None:
            # One graph call per evaluation instead of dozens of eager ops
            # (histograms especially): evaluations come every 10 steps.
            @tf.function
            def write(step: Any, accuracy: Any, xent: Any) -> None:
                with self.validation.as_default(step=step):
                    tf.summary.scalar("accuracy", accuracy)
                    tf.summary.scalar("cross_entropy", xent)
                with self.train.as_default(step=step):
                    tf.summary.histogram("final_result/weights", head.dense.kernel)
                    tf.summary.histogram("final_result/biases", head.dense.bias)

            self._validation_fn = write
        self._validation_fn(
            tf.constant(step, tf.int64),
            tf.constant(event["validation_accuracy"], tf.float32),
            tf.constant(event["validation_cross_entropy"], tf.float32),
        )

    def write_final(
        self, report: dict[str, Any], steps: int, head: _Head, config: TrainConfig, run_id: str
    ) -> None:
        from tensorboard.plugins.hparams import api as hp

        tf = self.tf
        image = confusion_matrix_image(report["labels"], report["confusion_matrix"])
        with self.validation.as_default(step=steps):
            tf.summary.image("test_confusion_matrix", image[None])
            tf.summary.scalar("test_accuracy", report["accuracy"])
        hparams = {
            key: value
            for key, value in config.as_dict().items()
            if isinstance(value, bool | int | float | str)
            and key
            not in ("image_dir", "bottleneck_dir", "summaries_dir", "output_graph", "output_labels")
        }
        writer = tf.summary.create_file_writer(str(self.tb_dir))
        with writer.as_default(step=steps):
            hp.hparams(hparams, trial_id=run_id)
            tf.summary.scalar("test_accuracy", report["accuracy"])
        writer.close()

    def close(self) -> None:
        self.train.close()
        self.validation.close()


def confusion_matrix_image(labels: list[str], matrix: list[list[int]], cell: int = 48) -> np.ndarray:
    """Draw a confusion matrix as an RGB image (rows true, columns predicted).

    Args:
        labels: class names.
        matrix: counts, rows = true class.
        cell: pixels per cell. Defaults to 48.

    Returns:
        uint8 `(H, W, 3)`.
    """
    from PIL import Image, ImageDraw

    counts = np.asarray(matrix, dtype=np.float64)
    n = len(labels)
    margin = 120
    image = Image.new("RGB", (margin + n * cell, margin + n * cell), "white")
    draw = ImageDraw.Draw(image)
    row_totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    share = counts / row_totals
    for r in range(n):
        draw.text((4, margin + r * cell + cell // 2 - 5), labels[r][:18], fill="black")
        for c in range(n):
            shade = int(255 - 200 * share[r, c])
            x0, y0 = margin + c * cell, margin + r * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255))
            text_colour = "white" if share[r, c] > 0.5 else "black"
            draw.text((x0 + 6, y0 + cell // 2 - 5), str(int(counts[r, c])), fill=text_colour)
    for c in range(n):
        draw.text((margin + c * cell + 2, margin - 14 - (c % 2) * 12), labels[c][:8], fill="black")
    draw.text((4, 4), "rows: true, columns: predicted", fill="black")
    return np.asarray(image)


def retrain(
    config: TrainConfig,
    run: Any,
    *,
    on_event: EventCallback | None = None,
    progress: ProgressCallback | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Retrain a head on a dataset into a run directory (see the module docstring).

    Args:
        config: the settings (retrain.py's names and defaults).
        run: the `engine.runs.RunDir` to write into (already created).
        on_event: called with each event dict (also appended to events.jsonl).
            Defaults to None.
        progress: called with `Progress` snapshots (scan, bottlenecks, export).
            Defaults to None.
        echo: called with retrain.py-style lines (`Step 480: Train accuracy =
            96.0%`, the report, `Final test accuracy = ...`). Defaults to None.

    Returns:
        The report (as in report.json), or `{"cancelled": True, "step": N}`.

    Raises:
        StudioError: for bad settings or data (status `failed` with the message).
        Exception: anything else, after status `failed` and the traceback in train.log.
    """
    training = _Training(config, run, on_event, progress, echo)
    try:
        with training.cancel.sigterm():
            return training.run_all()
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        if not isinstance(exc, StudioError):
            error = f"{type(exc).__name__}: {error}"
        _log_failure(run, exc)
        with contextlib.suppress(Exception):
            run.write_status("failed", error=error, step=training.step)
            training.sink.emit({"event": "phase", "phase": "failed", "error": error})
        raise
