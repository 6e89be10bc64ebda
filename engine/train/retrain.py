"""Retraining the last layer: retrain.py's run, with live step events.

`retrain(config, run)` scans the dataset, computes (or reads cached)
bottlenecks, trains retrain.py's head on them (`engine.train.loop`),
evaluates on the test split and writes everything into the run folder:
`config.json`, `events.jsonl` (a `step` event every step), `status.json`,
`labels.txt`, `report.json`, `MODEL_CARD.md`, TensorBoard logs under `tb/`,
and the model: `export/model.tflite` (RGB uint8 in, probabilities out) with
`head.npz` when the backbone ran on LiteRT, `model.keras` when the training
ran TensorFlow. Then the run is `done`, and usable. Its exports follow
(`engine.train.follow_up`: model.keras, and with `--export` every format,
each re-scored), in the same process unless `exports="later"`.

The head is fitted by full-batch L-BFGS (`engine.train.head_fit`) unless
`--head_fit sgd` asks for retrain.py's loop. With the L-BFGS fit on a warm
cache nothing imports TensorFlow before `done`: the cached LiteRT backbone
gives the features, numpy and scipy fit the head, the run's model is that
backbone's graph with the head appended (`engine.serve.assemble`), and the
logs are written by `engine.train.event_writer`.

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
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import fsutil, heal, paths
from engine.core.errors import StudioError, disk_full_error
from engine.core.paths import engine_version
from engine.core.progress import ProgressCallback
from engine.core.rundir import RunDir
from engine.data.dataset import Dataset
from engine.data.scan import scan_dataset
from engine.models.loading import load_feature_runtime
from engine.models.registry import Backbone, get_backbone
from engine.models.runtime import FeatureRuntime, LiteRTFeatureRuntime, TensorFlowFeatureRuntime
from engine.serve.assemble import assemble_classifier
from engine.serve.model_info import info_for
from engine.train import follow_up, unknown
from engine.train.config import TrainConfig
from engine.train.evaluation import evaluate, format_report
from engine.train.events import (
    CancelFlag,
    Echo,
    EventCallback,
    EventSink,
    RunCancelled,
    record_failure,
    stdout_is,
)
from engine.train.head_fit import LbfgsLoop, head_fit_used, sgd_summary
from engine.train.loop import StepLoop, TrainingData
from engine.train.model_card import write_model_card
from engine.train.output_flags import check_outputs
from engine.train.summaries import Summaries
from engine.train.training_data import training_data

STATUS_INTERVAL_S = 1.0
EXPORT_TIMING = ("now", "later")


def _versions() -> dict[str, str]:
    """The versions that made the run, read from the installed packages (importing none of them)."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "litert": version("ai-edge-litert"),
        "engine": engine_version(),
        "numpy": np.__version__,
    }


def _tensorflow_free(config: TrainConfig, backbone: Backbone) -> bool:
    """Whether the run can do without TensorFlow, given a LiteRT backbone: the L-BFGS head on
    cached ImageNet features, with no intermediate Keras models asked for."""
    return (
        head_fit_used(config)[0] == "lbfgs"
        and backbone.pretrained
        and config.weights == "imagenet"
        and config.runtime == "litert"
        and not config.intermediate_store_frequency
    )


class _Training:
    """One retraining run; `retrain` is the public door."""

    def __init__(
        self,
        config: TrainConfig,
        run: RunDir,
        on_event: EventCallback | None,
        progress: ProgressCallback | None,
        echo: Callable[[str], None] | None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.run = run
        self.sink = EventSink(run, on_event, progress)
        self.echo = Echo(echo)
        self.note = Echo(note or echo)
        self.cancel = CancelFlag(run)
        self.step = 0
        self._last_status = 0.0
        self._keras: tuple[Any, Any] | None = None  # (extractor, head) when TensorFlow trains
        self._loop: Any = None
        self._unknown: dict[str, Any] | None = None  # unknown.json, once calibrated
        self._unknown_summary: dict[str, Any] = unknown.summary(None, "the run was cancelled")

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

    def _runtime(self, config: TrainConfig, backbone: Backbone, size: int) -> FeatureRuntime:
        """The features' runtime; builds the Keras networks first when TensorFlow must train."""
        if _tensorflow_free(config, backbone):
            runtime = load_feature_runtime(
                backbone.name, input_size=size, prefer=config.runtime, weights=config.weights
            )
            if isinstance(runtime, LiteRTFeatureRuntime):
                return runtime
        import keras

        from engine.models.networks import build_feature_extractor
        from engine.train.head import Head

        keras.utils.set_random_seed(int(config.seed or 0))
        extractor = build_feature_extractor(backbone.name, input_size=size, weights=config.weights)
        head = Head(len(self.labels), backbone.feature_size, config.dropout, int(config.seed or 0))
        self._keras = (extractor, head)
        if config.weights == "imagenet" and config.fine_tune_blocks == 0 and backbone.pretrained:
            return load_feature_runtime(
                backbone.name, input_size=size, prefer=config.runtime, weights=config.weights
            )
        # The final model must embed exactly the extractor that made the features:
        # random (test) weights differ per build, and fine-tuning changes them.
        return TensorFlowFeatureRuntime(backbone, size, extractor)

    def _loop_for(self, config: TrainConfig, backbone: Backbone, runtime: FeatureRuntime,
                  size: int, data: TrainingData) -> Any:  # fmt: skip
        fit, fit_reason = head_fit_used(config)
        if fit_reason and backbone.pretrained:
            self.echo(f"note: --head_fit {config.head_fit} was asked, but {fit_reason}: using SGD")
        callbacks = {"should_stop": self.cancel.requested, "on_step": self._on_step, "echo": self.echo}
        if backbone.pretrained and fit == "lbfgs":
            return LbfgsLoop(config, len(self.labels), data, progress=self.sink.on_progress, **callbacks)
        assert self._keras is not None
        extractor, head = self._keras
        if not backbone.pretrained:  # small_cnn: the whole network trained end to end
            from engine.train.scratch import ScratchLoop

            return ScratchLoop(
                config, head, extractor, runtime, backbone, size, data,
                progress=self.sink.on_progress, tb_dir=self.run.tb_dir, **callbacks,
            )  # fmt: skip
        return StepLoop(config, head, extractor, runtime, backbone, size, data, **callbacks)

    # ------------------------------------------------------------------ main

    def run_all(self, exports: str) -> dict[str, Any]:
        self.config.validate()
        self.run.write_status("running", pid=os.getpid(), step=0)
        config = self.config.resolved(progress=self.sink.on_progress)
        for note in check_outputs(config, run_id=self.run.run_id):
            self.echo(note)
        with paths.using_model_dir(config.model_dir):
            report, dataset = self._train(config)
            if report.get("cancelled") or exports == "later":
                return report
            self.sink.phase("export")
            follow_up.run_follow_up(
                self.run, formats=follow_up.formats_for(config), dataset=dataset,
                progress=self.sink.on_progress, echo=self.note,
            )  # fmt: skip
            return self.run.read_report()

    def _train(self, config: TrainConfig) -> tuple[dict[str, Any], Dataset]:
        dataset = self._scan(config)
        backbone = get_backbone(str(config.architecture))
        size = int(config.image_size or backbone.input_size)
        if config.weights == "imagenet" and not backbone.weights_available():
            raise StudioError(
                f"the weights of {backbone.name} are not available offline; {backbone.weights_hint()}"
            )
        self.labels = labels = list(dataset.labels)
        runtime = self._runtime(config, backbone, size)
        # TensorFlow decodes its own input (tf.data) so that path is TensorFlow end to end.
        decoder = "tf" if runtime.runtime == "tensorflow" else "pil"
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
                "tensorflow_free": self._keras is None,
                "versions": _versions(),
                "command": sys.argv,
            }
        )
        self.run.write_status("running", pid=os.getpid(), architecture=backbone.name)
        if runtime.notice:
            self.echo(f"note: {runtime.notice}")

        data, skipped = training_data(
            config, dataset, runtime, decoder, run=self.run, sink=self.sink, echo=self.echo,
            should_stop=self.cancel.requested,
        )  # fmt: skip
        loop = self._loop = self._loop_for(config, backbone, runtime, size, data)
        writers = Summaries(self.run.tb_dir, labels)
        try:
            self.sink.phase("train")
            try:
                loop.train(writers)
                cancelled = False
            except RunCancelled:
                cancelled = True
            self._save_models(runtime, loop, calibrate=not cancelled)
            self.run.write_labels(labels)
            if cancelled:
                self.run.write_status("cancelled", step=self.step)
                self.echo(f"Cancelled at step {self.step}; the model so far is saved.")
                return {"cancelled": True, "step": self.step}, dataset

            self.sink.phase("evaluate")
            test_recs, test_truth, probabilities = loop.test_predictions()
            report = evaluate(
                labels, test_truth, probabilities, paths=[str(r.rel_path) for r in test_recs]
            )
            writers.write_final(report, loop.steps, config, self.run.run_id)
            report.update(
                {
                    "test_accuracy": report["accuracy"],
                    "run_id": self.run.run_id,
                    "architecture": backbone.name,
                    "runtime": runtime.runtime,
                    "steps": loop.steps,
                    "train_seconds": round(loop.train_seconds, 3),
                    "skipped": [{"path": p, "reason": r} for p, r in skipped],
                    "model": "export/model.tflite" if self._keras is None else "model.keras",
                    "unknown": self._unknown_summary,
                    "head_fit": loop.summary
                    if hasattr(loop, "summary")
                    else sgd_summary(config, loop.steps, head_fit_used(config)[1]),
                }
            )
            if self._keras is not None:
                report["keras"] = {"accuracy": report["accuracy"], "count": report["count"]}
            self.run.write_report(report)
            for line in format_report(report, misclassified=config.print_misclassified_test_images)[:-1]:
                self.echo(line)
            self.sink.emit(
                {"event": "result", "test_accuracy": report["accuracy"], "test_count": report["count"]}
            )
            write_model_card(self.run)
            follow_up.mark_pending(self.run, follow_up.formats_for(config))
            self.sink.phase("done")
            self.run.write_status("done", step=self.step, test_accuracy=report["accuracy"])
            self.echo(format_report(report)[-1])
            # The sample grid decodes photos: after `done`, as nobody waits for it.
            writers.write_samples(data.splits["train"], labels, backbone, size)
        finally:
            writers.close()
        # The exports load their own models: let the training's features and graphs go first.
        self._keras = self._loop = None
        del loop, data, runtime
        gc.collect()
        return report, dataset

    def _save_models(self, runtime: FeatureRuntime, loop: Any, *, calibrate: bool) -> None:
        """The trained model: model.keras when TensorFlow trained, and the LiteRT model with
        head.npz whenever the backbone ran frozen on LiteRT (the head appended to its graph);
        first the unknown rules (unknown.json), which every model carries."""
        kernel, bias = self._head_arrays(loop)
        if calibrate:
            rules, reason = unknown.calibrate_loop(
                loop, kernel, bias, self.config.unknown_false_rejection
            )
            if rules is not None:
                unknown.write_rules(self.run, rules)
                self._unknown = rules.as_dict()
            self._unknown_summary = unknown.summary(rules, reason)
        if self._keras is not None:
            self._save_keras(self.run.model_path)
        frozen = not self.config.fine_tune_blocks and runtime.backbone.pretrained
        if frozen and isinstance(runtime, LiteRTFeatureRuntime):
            info = info_for(self.labels, self.run.read_config(), self._unknown)
            content = assemble_classifier(runtime.model_bytes(), kernel, bias, info)
            fsutil.atomic_write_bytes(self.run.tflite_path, content)
            follow_up.write_head(self.run, kernel, bias)

    def _head_arrays(self, loop: Any) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(loop, LbfgsLoop):
            head = loop.head or loop.latest
            if head is None:  # cancelled before the first fit ended
                return np.zeros((1, len(self.labels)), np.float32), np.zeros(
                    len(self.labels), np.float32
                )
            return head.kernel, head.bias
        assert self._keras is not None
        dense = self._keras[1].dense
        return dense.kernel.numpy(), dense.bias.numpy()

    def _save_keras(self, target: Path, *, what: str | None = None) -> None:
        """The Keras model as it is now (backbone + head), carrying its labels, written atomically."""
        from engine.train.head import assemble_model

        assert self._keras is not None
        extractor, head = self._keras
        if isinstance(self._loop, LbfgsLoop) and self._loop.latest is not None:
            head.dense.kernel.assign(self._loop.latest.kernel)
            head.dense.bias.assign(self._loop.latest.bias)
        name, size = str(self.config.architecture), int(self.run.read_config()["input_size"])
        model = assemble_model(
            extractor, head, name, size, output_name=follow_up.output_name(self.config)
        )
        follow_up.save_keras_model(
            target, model, self.labels, self.run.read_config(), what=what, unknown=self._unknown
        )

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
            self._save_keras(
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


def retrain(
    config: TrainConfig,
    run: RunDir,
    *,
    on_event: EventCallback | None = None,
    progress: ProgressCallback | None = None,
    echo: Callable[[str], None] | None = None,
    exports: str = "now",
    note: Callable[[str], None] | None = None,
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
        exports: "now" runs the follow-up exports (`engine.train.follow_up`) here, after
            `done`; "later" leaves them to `python -m engine export`. Defaults to "now".
        note: gets the lines that come after retrain.py's last one (each export's figures).
            Defaults to `echo`.

    Returns:
        The report (as in report.json), or `{"cancelled": True, "step": N}`.

    Raises:
        StudioError: for bad settings or data, or a full disk (status `failed` with the message).
        Exception: anything else, after status `failed` and the traceback in train.log.
    """
    if exports not in EXPORT_TIMING:
        raise StudioError(f"exports={exports!r} is unknown; choose one of {', '.join(EXPORT_TIMING)}")
    training = _Training(config, run, on_event, progress, echo, note)
    try:
        with training.cancel.sigterm(), heal.listening(training.on_damage):
            return training.run_all(exports)
    except BaseException as exc:
        if run.read_status().get("state") == "done":  # the run is complete; only its exports stopped
            follow_up.record_interrupted(run, exc)
            raise
        record_failure(run, training.sink, exc, step=training.step)
        full = disk_full_error(exc)
        if full is not None:
            raise full from exc
        raise
