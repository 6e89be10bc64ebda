"""Training the from-scratch baseline (`small_cnn`) end to end, the TensorBoard seed's way.

No bottlenecks: every layer of `engine.models.scratch`'s network and the head
on it are trained on the photos themselves (prepared at the network's small
input size, held in memory), with augmentation always on (random flips,
rotations, zooms and shifts, applied to each batch in the `tf.data`
pipeline, never inside the saved model). Keras' `fit` runs the epochs, with:

- `LearningRateScheduler`: the learning rate per epoch (`--lr_schedule`:
  constant, or cosine decay), an Adam optimizer;
- the Keras `TensorBoard` callback (when given a folder): histograms of every
  layer's weights and biases each epoch, the graph (the Keras model), and the
  epoch scalars, the learning rate among them, in `tb/train` and
  `tb/validation`, as the classic Keras TensorBoard tutorial writes them;
- a callback that turns each batch into a `step` event and each epoch's end
  into retrain.py's step lines with the validation score, and stops the fit
  when the run is cancelled.

A step is one batch of `--train_batch_size` photos; the run lasts
`--epochs`, or as many whole epochs as `--how_many_training_steps` fills.
`ScratchLoop` has the step loops' interface (`train`, `test_predictions`,
`steps`, `train_seconds`, `summary`), so `engine.train.retrain` runs it like
the others and writes the same run folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.progress import ProgressCallback, ProgressTracker
from engine.models.registry import Backbone
from engine.train.augment import load_images
from engine.train.config import TrainConfig
from engine.train.events import RunCancelled
from engine.train.head import Head, assemble_model, class_weight_vector, learning_rate_at
from engine.train.loop import LoopBase, TrainingData, step_event, step_lines

AUGMENTATION = ("horizontal flip", "rotation up to 18 degrees", "zoom up to 10 %", "shift up to 10 %")
PREDICT_BATCH = 256


def scratch_summary(config: TrainConfig, steps: int, epochs: int, batch: int) -> dict[str, Any]:
    """report.json's `head_fit` for a network trained from scratch (every layer, end to end).

    Args:
        config: the run's settings.
        steps: the batches it ran.
        epochs: the epochs it ran.
        batch: photos per batch.
    """
    return {
        "method": "scratch",
        "requested": config.head_fit,
        "reason": "small_cnn has no pretrained features: every layer is trained on the photos",
        "optimizer": "adam",
        "steps": steps,
        "epochs": epochs,
        "learning_rate": config.learning_rate,
        "lr_schedule": config.lr_schedule,
        "train_batch_size": batch,
        "augmentation": list(AUGMENTATION),
    }


class ScratchLoop(LoopBase):
    """The whole network trained by Keras' `fit`, with the step loops' events and lines.

    Args:
        config: the run's settings (resolved: seed set).
        head: the dense layer put on the network.
        extractor: the network (`engine.models.scratch.build_small_cnn`); made trainable here.
        runtime: unused (the step loops' signature); may be None.
        backbone: the backbone entry (its geometry).
        size: the input side.
        data: the records and truth per split (no features).
        should_stop: asked after each batch; True stops with `RunCancelled`.
        on_step: gets each step's event.
        echo: gets retrain.py's lines.
        progress: gets the training's progress (phase "train", in steps). Defaults to None.
        tb_dir: the folder the Keras TensorBoard callback writes into; None writes no logs.
            Defaults to None.
    """

    def __init__(
        self,
        config: TrainConfig,
        head: Head,
        extractor: Any,
        runtime: Any,
        backbone: Backbone,
        size: int,
        data: TrainingData,
        *,
        should_stop: Callable[[], bool],
        on_step: Callable[[dict[str, Any]], None],
        echo: Callable[[str], None],
        progress: ProgressCallback | None = None,
        tb_dir: Path | None = None,
    ) -> None:
        super().__init__(
            config, data, should_stop=should_stop, on_step=on_step, echo=echo, progress=progress
        )
        self.head = head
        self.extractor = extractor
        self.backbone = backbone
        self.size = size
        self.tb_dir = tb_dir
        train_count = len(self.truth["train"])
        self.batch = max(1, min(config.train_batch_size, train_count))
        self.steps_per_epoch = math.ceil(train_count / self.batch)
        wanted = config.epochs or config.total_steps(train_count) / self.steps_per_epoch
        self.epochs = max(1, math.ceil(wanted))
        self.steps = self.epochs * self.steps_per_epoch
        self.seed = int(config.seed or 0)
        self.summary: dict[str, Any] = {}
        self.model: Any = None

    # ----------------------------------------------------------- data

    def _images(self, split: str) -> np.ndarray:
        records = self.splits[split]
        if not records:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        return load_images(records, self.backbone, self.size, self.config)

    def _train_dataset(self, images: np.ndarray) -> Any:
        import keras
        import tensorflow as tf

        seed = self.seed
        augment = keras.Sequential(
            [
                keras.layers.RandomFlip("horizontal", seed=seed),
                keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1),
                keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
                keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
            ],
            name="augmentation",
        )

        def distort(x: Any, y: Any) -> tuple[Any, Any]:
            x = augment(tf.cast(x, tf.float32), training=True)
            return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8), y

        return (
            tf.data.Dataset.from_tensor_slices((images, self.truth["train"]))
            .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(self.batch)
            .map(distort, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    # ----------------------------------------------------------- loop

    def train(self, summaries: Any = None) -> None:
        """Run every epoch; raises `RunCancelled` when `should_stop` says so (the weights so far kept).

        Args:
            summaries: the run's `Summaries`: its train writer gets the op graph of the
                model's forward pass (the Keras callback writes the rest). Defaults to None.
        """
        import keras

        config = self.config
        self.extractor.trainable = True
        self.model = assemble_model(self.extractor, self.head, self.backbone.name, self.size)
        self.model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        train_images = self._images("train")
        validation = None
        if len(self.truth["validation"]):
            validation = (self._images("validation"), self.truth["validation"])
        counts = np.bincount(self.truth["train"], minlength=self.head.dense.units).tolist()
        weights = class_weight_vector(counts, config.class_weights)
        self._echo(
            f"Training {self.backbone.name} from scratch: {len(train_images)} photos at "
            f"{self.size} px, {self.epochs} epochs of {self.steps_per_epoch} steps, augmentation on"
        )
        callbacks: list[Any] = [
            keras.callbacks.LearningRateScheduler(
                lambda epoch: float(learning_rate_at(config, epoch + 1, self.epochs))
            ),
            _steps_callback(self),
        ]
        if self.tb_dir is not None:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    log_dir=str(self.tb_dir), histogram_freq=1, write_graph=True, update_freq="epoch"
                )
            )
        if summaries is not None and self.tb_dir is not None:
            self._write_op_graph(summaries.train, train_images[:1])
        start = time.monotonic()
        self._tracker = ProgressTracker("train", self.steps, self._progress, unit="steps")
        self.model.fit(
            self._train_dataset(train_images),
            epochs=self.epochs,
            validation_data=validation,
            validation_batch_size=PREDICT_BATCH,
            class_weight=dict(enumerate(weights.tolist())),
            shuffle=False,  # the dataset shuffles itself, reshuffled every epoch
            callbacks=callbacks,
            verbose=0,
        )
        self.train_seconds = time.monotonic() - start
        self.summary = scratch_summary(config, self.step, math.ceil(self.step / self.steps_per_epoch),
                                       self.batch)  # fmt: skip
        if self.step < self.steps:
            raise RunCancelled

    def _write_op_graph(self, writer: Any, sample: np.ndarray) -> None:
        """The forward pass's op graph, for TensorBoard's Graphs tab beside the Keras one."""
        import tensorflow as tf

        forward = tf.function(lambda x: self.model(x, training=False))
        tf.summary.trace_on(graph=True, profiler=False)
        forward(tf.constant(sample))
        with writer.as_default():
            tf.summary.trace_export(name="forward_pass", step=0)

    def test_predictions(self) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """Probabilities on the whole test split."""
        records = list(self.splits["test"])
        if not records:
            return [], np.zeros(0, np.int64), np.zeros((0, self.head.dense.units), np.float32)
        probabilities = self.model.predict(self._images("test"), batch_size=PREDICT_BATCH, verbose=0)
        return records, self.truth["test"], np.asarray(probabilities, np.float32)


def _steps_callback(loop: ScratchLoop) -> Any:
    """The Keras callback that reports each batch as a `step` event and honours cancelling."""
    import keras

    class Steps(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.start = time.monotonic()
            self.pending: dict[str, Any] | None = None

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            loop.step += 1
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            elapsed = time.monotonic() - self.start
            event = step_event(
                loop.step, loop.steps, logs.get("accuracy", 0.0), logs.get("loss", 0.0), rate,
                loop.step * loop.batch, elapsed,
            )  # fmt: skip
            loop._tracker.advance(1)
            if batch + 1 == loop.steps_per_epoch:
                self.pending = event  # sent with the epoch's validation score
            else:
                loop._on_step(event)
            if loop._should_stop():
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            event, self.pending = self.pending, None
            if event is None:
                return
            logs = logs or {}
            if "val_accuracy" in logs:
                event["validation_accuracy"] = round(float(logs["val_accuracy"]), 6)
                event["validation_cross_entropy"] = round(float(logs["val_loss"]), 6)
                event["validation_count"] = len(loop.truth["validation"])
            for line in step_lines(event):
                loop._echo(line)
            loop._on_step(event)

    return Steps()
