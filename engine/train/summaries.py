"""TensorBoard logs of a run: scalars, histograms, sample images, the graph, hparams.

`tb/train` gets the step scalars (written inside the step functions), the
head's weight histograms and a grid of sample inputs (of the first
`SAMPLE_CLASSES_IN_GRID` classes); `tb/validation` the validation scalars and
the test confusion matrix (as text, its top confusions, above
`CONFUSION_IMAGE_MAX_CLASSES` classes); `tb/` the hparams and the final test
accuracy.
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
from engine.train.head import Head

SAMPLES_PER_CLASS_IN_GRID = 4
# Rows of the sample grid: 1,000 classes at 224 px would make a 224,000-pixel-high image.
SAMPLE_CLASSES_IN_GRID = 12


class Summaries:
    """TensorBoard writers for a run: `tb/train`, `tb/validation`, hparams in `tb/`."""

    def __init__(self, tb_dir: Path, labels: list[str]) -> None:
        import tensorflow as tf

        self.tf = tf
        self.tb_dir = Path(tb_dir)
        self.train = tf.summary.create_file_writer(str(self.tb_dir / "train"))
        self.validation = tf.summary.create_file_writer(str(self.tb_dir / "validation"))
        self.labels = labels
        self._validation_fn: Any = None

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
        with self.train.as_default():
            self.tf.summary.image(
                "sample_images", grid[None], step=0, description="rows: " + ", ".join(shown) + more
            )

    def write_validation(self, step: int, event: dict[str, Any], head: Head) -> None:
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
        self, report: dict[str, Any], steps: int, head: Head, config: TrainConfig, run_id: str
    ) -> None:
        from tensorboard.plugins.hparams import api as hp

        tf = self.tf
        with self.validation.as_default(step=steps):
            if len(report["labels"]) <= CONFUSION_IMAGE_MAX_CLASSES:
                image = confusion_matrix_image(report["labels"], report["confusion_matrix"])
                tf.summary.image("test_confusion_matrix", image[None])
            else:
                tf.summary.text("test_top_confusions", confusions_markdown(report["top_confusions"]))
            tf.summary.scalar("test_accuracy", report["accuracy"])
        hparams = {
            key: value
            for key, value in config.as_dict().items()
            if isinstance(value, bool | int | float | str) and key not in PATH_FIELDS
        }
        writer = tf.summary.create_file_writer(str(self.tb_dir))
        with writer.as_default(step=steps):
            hp.hparams(hparams, trial_id=run_id)
            tf.summary.scalar("test_accuracy", report["accuracy"])
        writer.close()

    def close(self) -> None:
        self.train.close()
        self.validation.close()


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
