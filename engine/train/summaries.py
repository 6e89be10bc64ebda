"""TensorBoard logs of a run: scalars, histograms, sample images, the graph, hparams.

`tb/train` gets the step scalars, the head's weight histograms and a grid of
sample inputs (of the first `SAMPLE_CLASSES_IN_GRID` classes); `tb/validation`
the validation scalars and the test confusion matrix (as text, its top
confusions, above `CONFUSION_IMAGE_MAX_CLASSES` classes); `tb/` the hparams
and the final test accuracy.

Everything here is written without TensorFlow (`engine.train.event_writer`),
so a run that needs no TensorFlow (the L-BFGS head on cached features) never
imports it for its logs. The loops that do run TensorFlow (retrain.py's SGD
steps, fine-tuning, small_cnn) write their step scalars and graphs from
inside their `tf.function`s through `train` / `validation`, TensorFlow
summary writers on the same folders, made on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import ImageError
from engine.models.registry import Backbone
from engine.train.config import PATH_FIELDS, TrainConfig
from engine.train.evaluation import CONFUSION_IMAGE_MAX_CLASSES
from engine.train.event_writer import EventWriter

SAMPLES_PER_CLASS_IN_GRID = 4
# Rows of the sample grid: 1,000 classes at 224 px would make a 224,000-pixel-high image.
SAMPLE_CLASSES_IN_GRID = 12


class Summaries:
    """TensorBoard writers for a run: `tb/train`, `tb/validation`, hparams in `tb/`."""

    def __init__(self, tb_dir: Path, labels: list[str]) -> None:
        self.tb_dir = Path(tb_dir)
        self.labels = labels
        self.train_log = EventWriter(self.tb_dir / "train")
        self.validation_log = EventWriter(self.tb_dir / "validation")
        self._tf_writers: dict[str, Any] = {}

    def _tf_writer(self, name: str) -> Any:
        if name not in self._tf_writers:
            import tensorflow as tf

            self._tf_writers[name] = tf.summary.create_file_writer(str(self.tb_dir / name))
        return self._tf_writers[name]

    @property
    def train(self) -> Any:
        """A TensorFlow summary writer on `tb/train` (for the loops that run TensorFlow)."""
        return self._tf_writer("train")

    @property
    def validation(self) -> Any:
        """A TensorFlow summary writer on `tb/validation`."""
        return self._tf_writer("validation")

    def write_samples(
        self, records: Sequence[Any], labels: list[str], backbone: Backbone, size: int
    ) -> None:
        """A grid of a few training images per class (what the network sees), for the first classes."""
        shown = labels[:SAMPLE_CLASSES_IN_GRID]
        by_label: dict[str, list[Any]] = {label: [] for label in shown}
        for record in records:
            tiles = by_label.get(record.label)
            if tiles is not None and len(tiles) < SAMPLES_PER_CLASS_IN_GRID:
                with contextlib.suppress(ImageError):
                    tiles.append(backbone.load(record.path, size))
        rows = []
        for tiles in by_label.values():
            tiles += [np.zeros((size, size, 3), np.uint8)] * (SAMPLES_PER_CLASS_IN_GRID - len(tiles))
            rows.append(np.concatenate(tiles, axis=1))
        grid = np.concatenate(rows, axis=0)
        more = f" (the first {len(shown)} of {len(labels)} classes)" if len(shown) < len(labels) else ""
        self.train_log.image("sample_images", grid, 0, description="rows: " + ", ".join(shown) + more)
        self.train_log.flush()

    def write_train_step(self, step: int, accuracy: float, xent: float, rate: float) -> None:
        """A step's training scalars (`accuracy`, `cross_entropy`, `learning_rate`) in `tb/train`."""
        self.train_log.scalar("accuracy", accuracy, step)
        self.train_log.scalar("cross_entropy", xent, step)
        self.train_log.scalar("learning_rate", rate, step)

    def write_validation(
        self, step: int, event: dict[str, Any], kernel: np.ndarray, bias: np.ndarray
    ) -> None:
        """An evaluation: the validation scalars, and the head's weight histograms at this step."""
        self.validation_log.scalar("accuracy", event["validation_accuracy"], step)
        self.validation_log.scalar("cross_entropy", event["validation_cross_entropy"], step)
        self.train_log.histogram("final_result/weights", kernel, step)
        self.train_log.histogram("final_result/biases", bias, step)
        self.validation_log.flush()
        self.train_log.flush()

    def write_final(self, report: dict[str, Any], steps: int, config: TrainConfig, run_id: str) -> None:
        """The test confusion matrix and accuracy, and the run's hparams."""
        if len(report["labels"]) <= CONFUSION_IMAGE_MAX_CLASSES:
            image = confusion_matrix_image(report["labels"], report["confusion_matrix"])
            self.validation_log.image("test_confusion_matrix", image, steps)
        else:
            self.validation_log.text(
                "test_top_confusions", confusions_markdown(report["top_confusions"]), steps
            )
        self.validation_log.scalar("test_accuracy", report["accuracy"], steps)
        self.validation_log.flush()
        hparams = {
            key: value
            for key, value in config.as_dict().items()
            if isinstance(value, bool | int | float | str) and key not in PATH_FIELDS
        }
        with EventWriter(self.tb_dir) as writer:
            writer.hparams(hparams, trial_id=run_id, step=steps)
            writer.scalar("test_accuracy", report["accuracy"], steps)

    def close(self) -> None:
        """Close every writer (the TensorFlow ones too, when they were made)."""
        self.train_log.close()
        self.validation_log.close()
        for writer in self._tf_writers.values():
            writer.close()


def confusions_markdown(rows: list[dict[str, Any]]) -> str:
    """The top confusions (`engine.train.evaluation.top_confusions`) as a Markdown table."""
    if not rows:
        return "No test photo was misclassified."
    lines = ["| true | predicted | photos | share of the true class |", "| --- | --- | ---: | ---: |"]
    for row in rows:
        true, predicted = (row[k].replace("|", "\\|") for k in ("true_label", "predicted_label"))
        lines.append(f"| {true} | {predicted} | {row['count']} | {row['share']:.0%} |")
    return "\n".join(lines)


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
