"""The step loop: retrain.py's training steps, validation and test scoring.

The steps are `tf.function`s on in-memory features with stateless random
sampling keyed by (seed, step), so a run is reproducible from its seed and
4,000 steps take seconds on a CPU. Augmentation and fine-tuning read images
instead (`engine.train.augment`).

The loop knows nothing of run folders: it asks `should_stop` before each
step, and hands each step's event to `on_step` (which records it) and
retrain.py's lines to `echo`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.core.progress import ProgressCallback
from engine.models.networks import set_trainable_blocks
from engine.models.registry import Backbone
from engine.models.runtime import FeatureRuntime
from engine.train.augment import load_images
from engine.train.config import TrainConfig
from engine.train.events import RunCancelled
from engine.train.head import Head, class_weight_vector, learning_rate_at
from engine.train.summaries import Summaries

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class TrainingData:
    """What the loop trains and scores on, per split.

    Attributes:
        splits: the image records of each split (those that have features).
        truth: the class index of each record, per split.
        features: the cached features per split (empty when fine-tuning).
    """

    splits: dict[str, list[Any]]
    truth: dict[str, np.ndarray]
    features: dict[str, np.ndarray]


class LoopBase:
    """What every training loop keeps: its settings, the data per split, the run's callbacks,
    and where it is (`step`, `train_seconds`). TensorFlow-free, so the L-BFGS loop can share it.

    Args:
        config: the run's settings (resolved).
        data: the records, truth and features per split.
        should_stop: asked between steps; True stops with `RunCancelled`.
        on_step: gets each step's event.
        echo: gets retrain.py's lines.
        progress: gets the training's progress (phase "train"). Defaults to None.
    """

    def __init__(
        self,
        config: TrainConfig,
        data: TrainingData,
        *,
        should_stop: Callable[[], bool],
        on_step: Callable[[dict[str, Any]], None],
        echo: Callable[[str], None],
        progress: ProgressCallback | None = None,
    ) -> None:
        self.config = config
        self.splits = data.splits
        self.truth = data.truth
        self.features = data.features
        self._should_stop = should_stop
        self._on_step = on_step
        self._echo = echo
        self._progress = progress
        self.step = 0
        self.train_seconds = 0.0


def step_event(
    step: int, total_steps: int, accuracy: Any, xent: Any, rate: float, images: int, elapsed: float
) -> dict[str, Any]:
    """A `step` event (see docs/run-contract.md) before its validation figures.

    Args:
        step: the 1-based step.
        total_steps: steps in the run.
        accuracy: the step's train accuracy.
        xent: the step's mean cross-entropy.
        rate: the step's learning rate.
        images: training images seen so far.
        elapsed: seconds since the first step started.
    """
    return {
        "event": "step",
        "step": step,
        "total_steps": total_steps,
        "train_accuracy": round(float(accuracy), 6),
        "cross_entropy": round(float(xent), 6),
        "learning_rate": rate,
        "images_per_s": round(images / elapsed, 1) if elapsed else 0.0,
        "elapsed_s": round(elapsed, 3),
    }


def step_lines(event: dict[str, Any]) -> list[str]:
    """retrain.py's lines for a step event: train accuracy, cross entropy, and validation if scored."""
    step = event["step"]
    lines = [
        f"Step {step}: Train accuracy = {event['train_accuracy'] * 100:.1f}%",
        f"Step {step}: Cross entropy = {event['cross_entropy']:.6f}",
    ]
    if "validation_accuracy" in event:
        lines.append(
            f"Step {step}: Validation accuracy = {event['validation_accuracy'] * 100:.1f}% "
            f"(N={event['validation_count']})"
        )
    return lines


def sample_rows(count: int, batch: int, seed: int, step: int) -> np.ndarray:
    """The rows of a split scored at `step`: all of them (`batch` -1 or bigger than the split),
    else a sorted random sample keyed by (seed, step), the same in every run with that seed."""
    if batch == -1 or batch >= count:
        return np.arange(count)
    rng = np.random.default_rng([seed, 1, step])
    return np.sort(rng.choice(count, size=batch, replace=False))


class StepLoop(LoopBase):
    """The training steps, validation and test scoring for one run.

    Args:
        config: the run's settings (resolved: seed set).
        head: the head to train.
        extractor: the Keras feature extractor (fine-tuned when asked, and the
            source of features for fine-tuning).
        runtime: the feature runtime for augmented steps.
        backbone: the backbone (its geometry).
        size: the input side.
        data: the records, truth and features per split.
        should_stop: asked before each step; True stops with `RunCancelled`.
        on_step: gets each step's event.
        echo: gets retrain.py's lines.
    """

    def __init__(
        self,
        config: TrainConfig,
        head: Head,
        extractor: Any,
        runtime: FeatureRuntime,
        backbone: Backbone,
        size: int,
        data: TrainingData,
        *,
        should_stop: Callable[[], bool],
        on_step: Callable[[dict[str, Any]], None],
        echo: Callable[[str], None],
    ) -> None:
        import tensorflow as tf

        super().__init__(config, data, should_stop=should_stop, on_step=on_step, echo=echo)
        self.head = head
        self.extractor = extractor
        self.runtime = runtime
        self.backbone = backbone
        self.size = size
        self.steps = config.total_steps(len(self.truth["train"]))
        self.fine_tune = config.fine_tune_blocks > 0
        counts = np.bincount(self.truth["train"], minlength=head.dense.units).tolist()
        self.class_weights = tf.constant(class_weight_vector(counts, config.class_weights))
        self.seed = int(config.seed or 0)
        self.tf = tf
        self._backbone_vars: list[Any] = []
        if self.fine_tune:
            set_trainable_blocks(extractor, config.fine_tune_blocks)
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
        return load_images(records, self.backbone, self.size, self.config, rng)

    def _x_of(self, split: str, rows: np.ndarray) -> Any:
        """Head inputs for rows of a split: cached features, or features of fresh images."""
        if not self.fine_tune:
            return self.features[split][rows]
        images = self._images([self.splits[split][i] for i in rows], None)
        return self.extractor(images, training=False)

    # ----------------------------------------------------------- loop

    def train(self, summaries: Summaries) -> None:
        """Run every step; raises `RunCancelled` when `should_stop` says so."""
        tf = self.tf
        config = self.config
        self._build_functions(summaries.train)
        val_count = len(self.truth["validation"])
        start = time.monotonic()
        train_count = len(self.truth["train"])
        for step in range(1, self.steps + 1):
            if self._should_stop():
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
            self.step = step
            elapsed = time.monotonic() - start
            event = step_event(
                step, self.steps, accuracy, xent, rate, step * config.train_batch_size, elapsed
            )
            if (step % config.eval_step_interval == 0 or step == 1 or step == self.steps) and val_count:
                rows = self._sample_rows(val_count, config.validation_batch_size, step)
                val_acc, val_xent = self._score(
                    self._x_of("validation", rows), tf.constant(self.truth["validation"][rows])
                )
                self._add_validation(event, summaries, len(rows), val_acc, val_xent)
            self._on_step(event)
        self.train_seconds = time.monotonic() - start

    def _add_validation(
        self, event: dict[str, Any], summaries: Summaries, count: int, accuracy: Any, xent: Any
    ) -> None:
        """Put a validation score into a step event, log it to TensorBoard, print retrain.py's lines."""
        step = event["step"]
        event["validation_accuracy"] = round(float(accuracy), 6)
        event["validation_cross_entropy"] = round(float(xent), 6)
        event["validation_count"] = count
        summaries.write_validation(
            step, event, self.head.dense.kernel.numpy(), self.head.dense.bias.numpy()
        )
        for line in step_lines(event):
            self._echo(line)

    def _sample_rows(self, count: int, batch: int, step: int) -> np.ndarray:
        return sample_rows(count, batch, self.seed, step)

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
