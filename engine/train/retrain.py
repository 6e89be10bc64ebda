"""Retraining the last layer: retrain.py's run, with live step events.

`retrain(config, run)` scans the dataset, computes (or reads cached)
bottlenecks, trains retrain.py's head on them (`engine.train.loop`),
evaluates on the test split, exports, and writes everything into the run
folder: `config.json`, `events.jsonl` (a `step` event every step),
`status.json`, `model.keras` (backbone + head, RGB uint8 in, probabilities
out), `labels.txt`, `report.json`, `export/model.tflite`, `MODEL_CARD.md`
and TensorBoard logs under `tb/`. The head is fitted by full-batch L-BFGS
(`engine.train.head_fit`) unless `--head_fit sgd` asks for retrain.py's loop.

Two paths bypass the cache, as in retrain.py: augmentation flags compute the
training features on the fly from distorted images, and fine-tuning the last
backbone blocks trains the backbone and head together on images.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import fsutil, heal, outputs, paths
from engine.core.errors import StudioError, disk_full_error
from engine.core.paths import engine_version
from engine.core.progress import ProgressCallback
from engine.core.rundir import RunDir
from engine.data.dataset import Dataset, ImageRecord
from engine.data.scan import scan_dataset
from engine.models.loading import load_feature_runtime
from engine.models.networks import build_feature_extractor
from engine.models.registry import Backbone, get_backbone
from engine.models.runtime import FeatureRuntime, TensorFlowFeatureRuntime
from engine.serve import export
from engine.serve.model_info import embed_in_keras, info_for
from engine.train import bottlenecks
from engine.train.config import TrainConfig
from engine.train.evaluation import evaluate, format_report
from engine.train.events import (
    CancelFlag,
    Echo,
    EventCallback,
    EventSink,
    RunCancelled,
    log_failure,
    record_failure,
    stdout_is,
)
from engine.train.head import OUTPUT_NAME, Head, assemble_model
from engine.train.head_fit import LbfgsLoop, head_fit_used, sgd_summary
from engine.train.loop import SPLIT_NAMES, StepLoop, TrainingData
from engine.train.model_card import write_model_card
from engine.train.output_flags import check_outputs, write_copies
from engine.train.scratch import ScratchLoop
from engine.train.summaries import Summaries

STATUS_INTERVAL_S = 1.0


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "engine": engine_version(),
        "numpy": np.__version__,
    }


class _Training:
    """One retraining run; `retrain` is the public door."""

    def __init__(
        self,
        config: TrainConfig,
        run: RunDir,
        on_event: EventCallback | None,
        progress: ProgressCallback | None,
        echo: Callable[[str], None] | None,
    ) -> None:
        self.config = config
        self.run = run
        self.sink = EventSink(run, on_event, progress)
        self.echo = Echo(echo)
        self.cancel = CancelFlag(run)
        self.step = 0
        self._last_status = 0.0

    # ------------------------------------------------------------------ setup

    def _scan(self, config: TrainConfig) -> Dataset:
        self.sink.phase("scan")
        root = str(config.image_dir)
        if not Path(root).is_dir():
            raise StudioError(
                f"--image_dir {root!r} is not a folder; give a folder with one sub-folder per class"
            )
        dataset = scan_dataset(
            root,
            validation_percentage=config.validation_percentage,
            testing_percentage=config.testing_percentage,
            progress=self.sink.on_progress,
        )
        dataset.require_trainable()
        if not dataset.split("train"):
            raise StudioError("the training split is empty; add images or lower the percentages")
        if not dataset.split("test") and config.testing_percentage > 0:
            raise StudioError(
                "the test split is empty; add a few more images per class or raise --testing_percentage"
            )
        return dataset

    def _runtime(self, config: TrainConfig, backbone: Backbone, extractor: Any) -> FeatureRuntime:
        size = int(config.image_size or backbone.input_size)
        if config.weights == "imagenet" and config.fine_tune_blocks == 0 and backbone.pretrained:
            return load_feature_runtime(
                backbone.name, input_size=size, prefer=config.runtime, weights=config.weights
            )
        # The final model must embed exactly the extractor that made the features:
        # random (test) weights differ per build, and fine-tuning changes them.
        return TensorFlowFeatureRuntime(backbone, size, extractor)

    # ------------------------------------------------------------------ main

    def run_all(self) -> dict[str, Any]:
        self.config.validate()
        self.run.write_status("running", pid=os.getpid(), step=0)
        config = self.config.resolved(progress=self.sink.on_progress)
        for note in check_outputs(config, run_id=self.run.run_id):
            self.echo(note)
        with paths.using_model_dir(config.model_dir):
            return self._run(config)

    def _run(self, config: TrainConfig) -> dict[str, Any]:
        dataset = self._scan(config)
        backbone = get_backbone(str(config.architecture))
        size = int(config.image_size or backbone.input_size)
        if config.weights == "imagenet" and not backbone.weights_available():
            raise StudioError(
                f"the weights of {backbone.name} are not available offline; {backbone.weights_hint()}"
            )

        import keras

        keras.utils.set_random_seed(int(config.seed or 0))
        extractor = build_feature_extractor(backbone.name, input_size=size, weights=config.weights)
        runtime = self._runtime(config, backbone, extractor)
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
                "backbone": backbone.as_dict(size),
                "input_size": size,
                "crop_fraction": backbone.crop_fraction,
                "resample": backbone.resample,
                "runtime": runtime.runtime,
                "runtime_notice": runtime.notice,
                "bottleneck_decoder": decoder,
                "versions": _versions(),
                "command": sys.argv,
            }
        )
        self.run.write_status("running", pid=os.getpid(), architecture=backbone.name)
        if runtime.notice:
            self.echo(f"note: {runtime.notice}")

        data, skipped = self._training_data(config, dataset, runtime, decoder)
        head = Head(len(labels), backbone.feature_size, config.dropout, int(config.seed or 0))
        fit, fit_reason = head_fit_used(config)
        if fit_reason and backbone.pretrained:
            self.echo(f"note: --head_fit {config.head_fit} was asked, but {fit_reason}: using SGD")
        extra: dict[str, Any] = {"progress": self.sink.on_progress} if fit == "lbfgs" else {}
        loop_class: Any = LbfgsLoop if fit == "lbfgs" else StepLoop
        if not backbone.pretrained:  # small_cnn: the whole network trained end to end
            loop_class = ScratchLoop
            extra = {"progress": self.sink.on_progress, "tb_dir": self.run.tb_dir}
        loop = loop_class(
            config, head, extractor, runtime, backbone, size, data,
            should_stop=self.cancel.requested, on_step=self._on_step, echo=self.echo, **extra,
        )  # fmt: skip
        self._snapshot = (extractor, head, backbone.name, size, labels)
        writers = Summaries(self.run.tb_dir, labels)
        try:
            writers.write_samples(data.splits["train"], labels, backbone, size)
            self.sink.phase("train")
            try:
                loop.train(writers)
                cancelled = False
            except RunCancelled:
                cancelled = True
            self._save_model(self.run.model_path)
            self.run.write_labels(labels)
            if cancelled:
                self.run.write_status("cancelled", step=self.step)
                self.echo(f"Cancelled at step {self.step}; the model so far is saved.")
                return {"cancelled": True, "step": self.step}

            self.sink.phase("evaluate")
            test_recs, test_truth, probabilities = loop.test_predictions()
            report = evaluate(
                labels, test_truth, probabilities, paths=[str(r.rel_path) for r in test_recs]
            )
            writers.write_final(report, loop.steps, head, config, self.run.run_id)
        finally:
            writers.close()
        report.update(
            {
                "test_accuracy": report["accuracy"],
                "run_id": self.run.run_id,
                "architecture": backbone.name,
                "runtime": runtime.runtime,
                "steps": loop.steps,
                "train_seconds": round(loop.train_seconds, 3),
                "skipped": [{"path": p, "reason": r} for p, r in skipped],
                "keras": {"accuracy": report["accuracy"], "count": report["count"]},
                "head_fit": loop.summary
                if isinstance(loop, LbfgsLoop | ScratchLoop)
                else sgd_summary(config, loop.steps, fit_reason),
            }
        )
        self.run.write_report(report)
        for line in format_report(report, misclassified=config.print_misclassified_test_images)[:-1]:
            self.echo(line)
        self.sink.emit(
            {"event": "result", "test_accuracy": report["accuracy"], "test_count": report["count"]}
        )

        # The export converts and re-scores from model.keras: let the training's features,
        # graphs and models go first, so its peak memory does not stack on theirs.
        self._snapshot = None
        del loop, data, extractor, head, runtime
        gc.collect()
        report = self._export(config, dataset, report)
        write_copies(config, self.run)
        write_model_card(self.run)
        self.sink.phase("done")
        self.run.write_status("done", step=self.step, test_accuracy=report["accuracy"])
        self.echo(format_report(report)[-1])
        return report

    def _output_name(self) -> str:
        name = self.config.final_tensor_name or OUTPUT_NAME
        if name == "final_result":  # retrain.py's default: our dense layer already has that name
            return OUTPUT_NAME
        return name

    def _save_model(self, target: Path, *, what: str | None = None) -> None:
        """The model as it is now (backbone + head), carrying its labels, written atomically."""
        extractor, head, name, size, labels = self._snapshot
        model = assemble_model(extractor, head, name, size, output_name=self._output_name())
        info = info_for(labels, self.run.read_config())
        writing = outputs.output_path(target, what=what) if what else fsutil.atomic_path(target)
        with writing as tmp:
            model.save(tmp)
            embed_in_keras(tmp, info)

    def on_damage(self, damage: heal.Damage) -> None:
        """A cache this run read was damaged and healed: say so in the run folder (and the terminal)."""
        self.run.record_warning(damage.message, **damage.as_dict())
        if not stdout_is(self.run.log_path):  # a job's stdout is train.log: written there already
            self.echo(f"warning: {damage.message}")

    def _on_step(self, event: dict[str, Any]) -> None:
        self.step = int(event["step"])
        every = self.config.intermediate_store_frequency
        if every and self.step % every == 0 and self.step < event["total_steps"]:
            folder = Path(self.config.intermediate_output_graphs_dir or self.run.path / "intermediate")
            self._save_model(
                folder / f"intermediate_{self.step}.keras", what="--intermediate_output_graphs_dir"
            )
        if "validation_accuracy" in event:
            now = time.monotonic()
            last = event["step"] == event["total_steps"]
            if now - self._last_status >= STATUS_INTERVAL_S or last:
                # status.json is fsynced under a lock: keep it to about once a second
                self._last_status = now
                self.run.update_status(step=event["step"], total_steps=event["total_steps"])
        self.sink.emit(event)

    def _export(self, config: TrainConfig, dataset: Dataset, report: dict[str, Any]) -> dict[str, Any]:
        """Write the float TFLite (always) and, with --export, every format; echo the figures."""
        self.sink.phase("export")
        formats = export.FORMATS if config.export else ("tflite",)
        try:
            # The float TFLite is always written, so predicting never needs TensorFlow.
            results = export.export_run(
                self.run, formats=formats, dataset=dataset, progress=self.sink.on_progress
            )
        except Exception as exc:
            if config.export:
                raise
            # Not asked for: the run stays usable on model.keras; say why LiteRT is missing.
            log_failure(self.run, exc)
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

    def _training_data(
        self, config: TrainConfig, dataset: Dataset, runtime: FeatureRuntime, decoder: str
    ) -> tuple[TrainingData, list[tuple[str, str]]]:
        """Records, truth and (unless fine-tuning) features per split; undecodable files left out."""
        index_of = {label: i for i, label in enumerate(dataset.labels)}
        splits = {name: list(dataset.split(name)) for name in SPLIT_NAMES}
        skipped: list[tuple[str, str]] = []
        features: dict[str, np.ndarray] = {}
        if config.fine_tune_blocks == 0 and runtime.backbone.pretrained:  # small_cnn reads images
            features, splits, skipped = self._bottlenecks(config, splits, runtime, decoder)
        truth = {
            name: np.asarray([index_of[r.label] for r in recs], dtype=np.int64)
            for name, recs in splits.items()
        }
        if not len(truth["train"]):
            raise StudioError("no training image could be decoded; check the dataset's problems list")
        return TrainingData(splits, truth, features), skipped

    def _bottlenecks(
        self,
        config: TrainConfig,
        splits: dict[str, list[ImageRecord]],
        runtime: FeatureRuntime,
        decoder: str,
    ) -> tuple[dict[str, np.ndarray], dict[str, list[ImageRecord]], list[tuple[str, str]]]:
        self.sink.phase("bottlenecks")
        features, new_splits, result = bottlenecks.split_bottlenecks(
            splits, runtime, weights=config.weights, bottleneck_dir=config.bottleneck_dir,
            seed=config.seed, decoder=decoder, progress=self.sink.on_progress,
            should_stop=self.cancel.requested, ray_address=config.ray,
        )  # fmt: skip
        self.run.update_status(
            bottlenecks={
                "cached": result.cached,
                "computed": result.computed,
                "damaged": result.damaged,
                "skipped": len(result.skipped),
                "seconds": round(result.seconds, 3),
                **({"ray_nodes": result.nodes} if result.nodes else {}),
            }
        )
        if result.damaged:
            self.run.record_warning(
                f"{result.damaged} bottleneck cache entries failed their checksum and were recomputed"
            )
        for path, reason in result.skipped:
            self.echo(f"skipped {path}: {reason}")
        return features, new_splits, result.skipped


def retrain(
    config: TrainConfig,
    run: RunDir,
    *,
    on_event: EventCallback | None = None,
    progress: ProgressCallback | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Retrain a head on a dataset into a run folder (see the module docstring).

    Args:
        config: the settings (retrain.py's names and defaults); left unchanged.
        run: the run folder to write into (already created).
        on_event: called with each event dict (also appended to events.jsonl).
            Defaults to None.
        progress: called with `Progress` snapshots (scan, bottlenecks, export).
            Defaults to None.
        echo: called with retrain.py-style lines (`Step 480: Train accuracy =
            96.0%`, the report, `Final test accuracy = ...`). Defaults to None.

    Returns:
        The report (as in report.json), or `{"cancelled": True, "step": N}`.

    Raises:
        StudioError: for bad settings or data, or a full disk (status `failed` with the message).
        Exception: anything else, after status `failed` and the traceback in train.log.
    """
    training = _Training(config, run, on_event, progress, echo)
    try:
        with training.cancel.sigterm(), heal.listening(training.on_damage):
            return training.run_all()
    except BaseException as exc:
        record_failure(run, training.sink, exc, step=training.step)
        full = disk_full_error(exc)
        if full is not None:
            raise full from exc
        raise
