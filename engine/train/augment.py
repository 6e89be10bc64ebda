"""Augmentation: retrain.py's distortions, applied to fresh images at every step.

With any distortion flag on, the training features cannot come from the
cache: each step decodes its batch, distorts it (`distort`) and computes the
features anew. Fine-tuning also reads images (`load_images`), undistorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.core.errors import StudioError
from engine.data.batches import iter_prepared_batches
from engine.models.registry import Backbone
from engine.train.config import TrainConfig


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


def load_images(
    records: Sequence[Any],
    backbone: Backbone,
    size: int,
    config: TrainConfig,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A batch of training images, prepared and, when `rng` is given, distorted.

    A distorted image is prepared larger first (by the crop and scale
    margins), so the random crop has room to move.

    Args:
        records: the images (`ImageRecord`s).
        backbone: the backbone whose geometry applies.
        size: the network's input side.
        config: the distortion settings.
        rng: the random generator; None prepares the images as they are. Defaults to None.

    Returns:
        uint8 `(len(records), size, size, 3)`.

    Raises:
        StudioError: an image could not be decoded (the dataset changed since the scan).
    """
    margin = (1 + config.random_crop / 100) * (1 + config.random_scale / 100)
    base = max(size, round(size * margin)) if rng is not None else size

    def load(record: Any) -> np.ndarray:
        return backbone.load(record.path, base)

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
                size,
                rng,
                flip_left_right=config.flip_left_right,
                random_crop=config.random_crop,
                random_scale=config.random_scale,
                random_brightness=config.random_brightness,
            )
            for image in out
        ]
    )
