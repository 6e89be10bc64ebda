"""Leaderboard candidates: what a sweep scores, behind one small interface.

A **candidate** is something that, given the dataset and its split, yields a
leaderboard row's figures, and can be turned into a full run:

- `name`: its unique id in the leaderboard (`efficientnet_lite0@224`);
- `kind`: what it is, in words ("transfer learning", "from scratch");
- `architecture`, `input_size`: what a full run trains (`--architecture`, `--image_size`);
- `unavailable()`: None when it can run on this machine, else why not (the row is
  then listed as skipped, with that reason);
- `evaluate(context)`: scores it on `context.dataset`'s split and returns a
  `CandidateResult` (test accuracy, macro-F1, float and int8 TFLite size,
  LiteRT latency per image, int8's accuracy); it reports progress through
  `context.progress` and polls `context.should_stop` (raising `RunCancelled`
  or `FitStopped` when told), and may write scratch files into
  `context.workdir`, which is removed afterwards;
- `full_run(config)`: the `TrainConfig` that trains it for real on the sweep's
  data and split (model, labels, exports, report), which the Compare page
  starts with one click.

`BackboneCandidate` (a pretrained backbone at one input size: cached
features, the L-BFGS head, the model exported and timed) is the built-in
kind. Another kind plugs in by registering a factory under its name in
`CANDIDATE_KINDS` (`name -> (name, SweepConfig) -> [Candidate, ...]`):
`ScratchCandidate`, the from-scratch `small_cnn` baseline (the whole network
trained on the photos by `engine.train.scratch`, kind "from scratch"), is
registered that way, so users see what transfer learning buys them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.core.progress import ProgressCallback
from engine.core.rundir import RunDir
from engine.data.dataset import Dataset
from engine.models.registry import get_backbone, list_backbones
from engine.train.config import TrainConfig
from engine.train.evaluation import evaluate

TRANSFER = "transfer learning"
FROM_SCRATCH = "from scratch"
SPLITS = ("train", "validation", "test")
# How a sweep (and the full run it offers) trains small_cnn: enough epochs for the
# demo's accuracy to level off, in under a minute on two CPU cores (BENCHMARKS.md).
SCRATCH_RECIPE = {"epochs": 60.0, "train_batch_size": 32, "learning_rate": 0.01}


@dataclass
class SweepContext:
    """What a candidate is scored with.

    Attributes:
        config: the sweep's resolved `SweepConfig` (dataset folder, split, seed, weights).
        dataset: the scanned dataset (its split is the sweep's).
        workdir: an empty scratch folder for this candidate (removed afterwards).
        progress: gets progress snapshots (bottlenecks, train, export). Defaults to None.
        should_stop: True when the sweep is cancelled. Defaults to never.
        echo: gets lines for the log. Defaults to dropping them.
    """

    config: Any
    dataset: Dataset
    workdir: Path
    progress: ProgressCallback | None = None
    should_stop: Callable[[], bool] = lambda: False
    echo: Callable[[str], None] = lambda line: None


@dataclass
class CandidateResult:
    """A candidate's figures, all measured on the sweep's test split.

    Attributes:
        test_accuracy: the model's accuracy (0..1).
        macro_f1: the mean of the per-class F1 scores.
        test_count: test photos scored.
        size_bytes: the float TFLite model's size.
        int8_size_bytes: the int8 TFLite model's size (None when it could not be made).
        latency_ms: the float TFLite model's LiteRT time for one photo (median).
        int8_latency_ms: the same for the int8 model.
        int8_accuracy: the int8 model's test accuracy.
        details: anything else worth keeping (the L2, iterations, seconds per phase).
    """

    test_accuracy: float
    macro_f1: float
    test_count: int
    size_bytes: int | None = None
    int8_size_bytes: int | None = None
    latency_ms: float | None = None
    int8_latency_ms: float | None = None
    int8_accuracy: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def int8_accuracy_change(self) -> float | None:
        """int8's test accuracy minus the float model's (negative: int8 loses)."""
        if self.int8_accuracy is None:
            return None
        return round(self.int8_accuracy - self.test_accuracy, 6)


class Candidate(Protocol):
    """Something a sweep scores and can turn into a full run (see the module docstring)."""

    name: str
    kind: str
    architecture: str
    input_size: int

    def unavailable(self) -> str | None: ...

    def evaluate(self, context: SweepContext) -> CandidateResult: ...

    def full_run(self, config: Any) -> TrainConfig: ...


def split_truth(labels: Any, splits: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    """The class index of every record, per split."""
    index_of = {label: i for i, label in enumerate(labels)}
    return {k: np.asarray([index_of[r.label] for r in recs], np.int64) for k, recs in splits.items()}


def full_run_config(config: Any, architecture: str, input_size: int, **settings: Any) -> TrainConfig:
    """A full, exported training of `architecture` at `input_size` on a sweep's data, split and seed.

    Args:
        config: the sweep's `SweepConfig`.
        architecture: what to train.
        input_size: its input side.
        **settings: more `TrainConfig` fields.
    """
    return TrainConfig(
        image_dir=config.image_dir, architecture=architecture, image_size=input_size,
        validation_percentage=config.validation_percentage,
        testing_percentage=config.testing_percentage, class_weights=config.class_weights,
        seed=config.seed, export=True, weights=config.weights, **settings,
    )  # fmt: skip


def macro_f1(report: dict[str, Any]) -> float:
    """The mean per-class F1 of an `engine.train.evaluation.evaluate` report."""
    scores = [row["f1"] for row in report["per_class"]]
    return round(float(np.mean(scores)), 6) if scores else 0.0


@dataclass(frozen=True)
class BackboneCandidate:
    """A pretrained backbone at one input size, with the L-BFGS head on its cached features."""

    architecture: str
    input_size: int
    kind: str = TRANSFER

    @property
    def name(self) -> str:
        """`<backbone>@<side>`."""
        return f"{self.architecture}@{self.input_size}"

    def unavailable(self) -> str | None:
        """Why its weights are not usable here, or None."""
        backbone = get_backbone(self.architecture)
        if backbone.weights_available(self.input_size):
            return None
        return f"no ImageNet weights on this machine: {backbone.weights_hint(self.input_size)}"

    def full_run(self, config: Any) -> TrainConfig:
        """A training of this backbone and size on the sweep's data and split, exported fully."""
        return full_run_config(
            config, self.architecture, self.input_size, bottleneck_dir=config.bottleneck_dir
        )

    def evaluate(self, context: SweepContext) -> CandidateResult:
        """Features (cached), the L-BFGS head, then the model timed on LiteRT: no export.

        On a LiteRT backbone the model is the backbone's graph with the head appended
        (`engine.serve.assemble`, milliseconds, no TensorFlow); a backbone that runs on
        TensorFlow (random weights in tests, a failed conversion) is converted once to
        the float TFLite instead. int8 is measured only for the candidate made a full run.
        """
        from engine.models.loading import load_feature_runtime
        from engine.models.runtime import LiteRTFeatureRuntime, TensorFlowFeatureRuntime
        from engine.train.bottlenecks import split_bottlenecks
        from engine.train.head import class_weight_vector
        from engine.train.softmax import choose_l2

        config, dataset = context.config, context.dataset
        backbone = get_backbone(self.architecture)
        seconds: dict[str, float] = {}
        start = time.monotonic()
        extractor = None
        if config.weights == "imagenet":
            runtime = load_feature_runtime(backbone.name, input_size=self.input_size)
        else:  # random weights differ per build: the model must embed the network that made the features
            from engine.models.networks import build_feature_extractor

            extractor = build_feature_extractor(backbone.name, input_size=self.input_size, weights=None)
            runtime = TensorFlowFeatureRuntime(backbone, self.input_size, extractor)
        seconds["load"] = time.monotonic() - start
        splits = {name: list(dataset.split(name)) for name in SPLITS}
        features, kept, extracted = split_bottlenecks(
            splits, runtime, weights=config.weights, bottleneck_dir=config.bottleneck_dir,
            seed=config.seed, decoder="tf" if runtime.runtime == "tensorflow" else "pil",
            progress=context.progress, should_stop=context.should_stop, ray_address=config.ray,
        )  # fmt: skip
        seconds["features"] = extracted.seconds
        truth = split_truth(dataset.labels, kept)
        counts = np.bincount(truth["train"], minlength=len(dataset.labels)).tolist()
        fit_start = time.monotonic()
        head, _ = choose_l2(
            (features["train"], truth["train"]), (features["validation"], truth["validation"]),
            len(dataset.labels), sample_weights=class_weight_vector(counts, config.class_weights)[truth["train"]],
            should_stop=context.should_stop,
        )  # fmt: skip
        seconds["fit"] = time.monotonic() - fit_start
        report = evaluate(dataset.labels, truth["test"], head.probabilities(features["test"]))
        timing_start = time.monotonic()
        if isinstance(runtime, LiteRTFeatureRuntime):
            model = time_assembled(context, runtime.model_bytes(), head.kernel, head.bias)
        else:
            model = self._export_float(context, extractor, head, report)
        seconds["latency"] = time.monotonic() - timing_start
        return scored_result(
            report, model,
            {
                "l2": head.l2,
                "iterations": head.iterations,
                "features_cached": extracted.cached,
                "features_computed": extracted.computed,
                "skipped": len(extracted.skipped),
                "seconds": {k: round(v, 3) for k, v in seconds.items()},
                "runtime": runtime.runtime,
            },
        )  # fmt: skip

    def _export_float(
        self, context: SweepContext, extractor: Any, head: Any, report: dict[str, Any]
    ) -> dict[str, Any]:
        """The model (backbone + head) converted to the float TFLite and scored, as a run's is."""
        from engine.train.head import Head, assemble_model

        backbone = get_backbone(self.architecture)
        if extractor is None:
            from engine.models.networks import build_feature_extractor

            extractor = build_feature_extractor(backbone.name, input_size=self.input_size)
        layer = Head(
            len(context.dataset.labels), backbone.feature_size, 0.0, int(context.config.seed or 0)
        )
        layer.dense.kernel.assign(head.kernel)
        layer.dense.bias.assign(head.bias)
        model = assemble_model(extractor, layer, backbone.name, self.input_size)
        return export_candidate(context, model, self.architecture, self.input_size, report)["tflite"]


def time_assembled(
    context: SweepContext, features_tflite: bytes, kernel: np.ndarray, bias: np.ndarray
) -> dict[str, Any]:
    """The candidate's LiteRT model (backbone graph + head), its size and its latency on one photo.

    Args:
        context: the candidate's context (its `workdir` gets the file).
        features_tflite: the backbone's converted feature extractor.
        kernel: the head's kernel.
        bias: the head's bias.

    Returns:
        `size_bytes` and `latency_ms` (median of one-photo calls on LiteRT).
    """
    from engine.serve.assemble import assemble_classifier
    from engine.serve.export import latency_ms
    from engine.serve.model_files import LiteModel

    context.workdir.mkdir(parents=True, exist_ok=True)
    path = context.workdir / "model.tflite"
    path.write_bytes(assemble_classifier(features_tflite, kernel, bias))
    model = LiteModel(path)
    side = model.input_size
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return {"size_bytes": path.stat().st_size, "latency_ms": round(latency_ms(model, image), 3)}


def export_candidate(
    context: SweepContext, model: Any, architecture: str, input_size: int, report: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """A candidate's Keras model saved into its scratch folder, converted to the float TFLite, scored.

    For candidates whose model is trained in TensorFlow (small_cnn, random weights).

    Args:
        context: the candidate's context (its `workdir` gets the files).
        model: the Keras model (uint8 in, probabilities out).
        architecture: the backbone it is built on (its geometry prepares the test photos).
        input_size: the input side.
        report: the Keras model's test report.

    Returns:
        `engine.serve.export.export_run`'s figures per format (the float TFLite).
    """
    from engine.serve.export import export_run

    backbone = get_backbone(architecture)
    scratch = RunDir(context.workdir)
    context.workdir.mkdir(parents=True, exist_ok=True)
    model.save(scratch.model_path)
    scratch.write_labels(list(context.dataset.labels))
    scratch.write_config(
        {
            "input_size": input_size,
            "crop_fraction": backbone.crop_fraction,
            "resample": backbone.resample,
        }
    )
    scratch.write_report(report)
    return export_run(scratch, formats=("tflite",), dataset=context.dataset, progress=context.progress)


def scored_result(
    report: dict[str, Any], model: dict[str, Any], details: dict[str, Any]
) -> CandidateResult:
    """A `CandidateResult` from the test report and the float model's size and latency (int8
    stays empty until the candidate is made a full run)."""
    if "error" in model:
        raise RuntimeError(f"the candidate's model could not be timed: {model['error']}")
    return CandidateResult(
        test_accuracy=report["accuracy"],
        macro_f1=macro_f1(report),
        test_count=report["count"],
        size_bytes=model.get("size_bytes"),
        latency_ms=model.get("latency_ms"),
        details={"tflite_accuracy": model.get("accuracy"), **details},
    )


@dataclass(frozen=True)
class ScratchCandidate:
    """The from-scratch baseline: small_cnn trained end to end on the photos (`engine.train.scratch`)."""

    input_size: int
    architecture: str = "small_cnn"
    kind: str = FROM_SCRATCH

    @property
    def name(self) -> str:
        """`small_cnn@<side>`."""
        return f"{self.architecture}@{self.input_size}"

    def unavailable(self) -> str | None:
        """None: it needs no pretrained weights."""
        return None

    def full_run(self, config: Any) -> TrainConfig:
        """The training this candidate runs (`SCRATCH_RECIPE`), on the sweep's data and split."""
        return full_run_config(config, self.architecture, self.input_size, **SCRATCH_RECIPE)

    def evaluate(self, context: SweepContext) -> CandidateResult:
        """Train the network from scratch, score it on the test split, export and time it."""
        import keras

        from engine.models.networks import build_feature_extractor
        from engine.train.head import Head, assemble_model
        from engine.train.loop import TrainingData
        from engine.train.scratch import ScratchLoop

        config, dataset = self.full_run(context.config), context.dataset
        backbone = get_backbone(self.architecture)
        seed = int(config.seed or 0)
        keras.utils.set_random_seed(seed)
        extractor = build_feature_extractor(backbone.name, input_size=self.input_size, weights=None)
        head = Head(len(dataset.labels), backbone.feature_size, config.dropout, seed)
        splits = {name: list(dataset.split(name)) for name in SPLITS}
        loop = ScratchLoop(
            config, head, extractor, None, backbone, self.input_size,
            TrainingData(splits, split_truth(dataset.labels, splits), {}),
            should_stop=context.should_stop, on_step=lambda event: None,
            echo=lambda line: None if line.startswith("Step ") else context.echo(line),
            progress=context.progress,
        )  # fmt: skip
        loop.train()
        _, truth, probabilities = loop.test_predictions()
        report = evaluate(dataset.labels, truth, probabilities)
        export_start = time.monotonic()
        model = assemble_model(extractor, head, backbone.name, self.input_size)
        exported = export_candidate(context, model, self.architecture, self.input_size, report)["tflite"]
        seconds = {"train": loop.train_seconds, "export": time.monotonic() - export_start}
        return scored_result(
            report, exported,
            {"epochs": loop.summary.get("epochs"), "steps": loop.summary.get("steps"),
             "seconds": {k: round(v, 3) for k, v in seconds.items()}, "runtime": "tensorflow"},
        )  # fmt: skip


def _scratch_candidates(name: str, config: Any) -> list[Candidate]:
    sizes = get_backbone(name).input_sizes
    return [ScratchCandidate(size) for size in (sizes if config.sizes == "all" else sizes[:1])]


# Candidate kinds other than the registry's backbones, by name (see the module docstring).
CandidateFactory = Callable[[str, Any], list[Candidate]]
CANDIDATE_KINDS: dict[str, CandidateFactory] = {"small_cnn": _scratch_candidates}


def known_candidates() -> list[str]:
    """Every name `--architectures` accepts: the registered backbones, then the other kinds."""
    backbones = [b.name for b in list_backbones()]
    return backbones + [kind for kind in CANDIDATE_KINDS if kind not in backbones]


def candidates_for(config: Any) -> list[Candidate]:
    """The candidates a sweep config asks for, in order.

    Named ones are taken as given; with none named, every pretrained backbone
    whose weights are on this machine, then every other registered kind (small_cnn).

    Args:
        config: a `SweepConfig`.

    Returns:
        The candidates (some may be unavailable; the sweep lists those as skipped).
    """
    names = config.names()
    if not names:
        names = [b.name for b in list_backbones() if b.pretrained and b.weights_available()]
        names += list(CANDIDATE_KINDS)
    out: list[Candidate] = []
    for name in names:
        factory = CANDIDATE_KINDS.get(name)
        if factory is not None:
            out.extend(factory(name, config))
            continue
        backbone = get_backbone(name)
        sizes = backbone.input_sizes if config.sizes == "all" else (backbone.input_size,)
        out.extend(BackboneCandidate(name, size) for size in sizes)
    return out
