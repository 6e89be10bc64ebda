"""The geometry of a network input: decode at the right scale, crop, resize.

Training, export, prediction and the dashboard's thumbnails all prepare a
photo here, so a photo is prepared the same way whichever of them reads it.
Value normalisation (scaling to [-1, 1] and so on) lives inside the models,
so everything here stays uint8.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from engine.data.images import ImageSource, load_image, to_rgb

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "area": Image.Resampling.BOX,
}
# Draft decoding keeps twice the pixels the resize needs (PIL's own `reducing_gap`
# for thumbnails): features then stay within 0.05 of a full decode (cosine
# 0.9999) where a 1x margin drifted by up to 0.6 (see tests/unit/train/test_fast_path.py).
DRAFT_MARGIN = 2


def draft_min_side(input_size: int, crop_fraction: float = 1.0) -> int:
    """The `min_side` to decode a photo with for a network input of `input_size`.

    Training, export and prediction all ask here, so a photo is decoded the
    same way whichever of them reads it.

    Args:
        input_size: the network's input side.
        crop_fraction: the central crop's share of the short side. Defaults to 1.0.

    Returns:
        `ceil(DRAFT_MARGIN * input_size / crop_fraction)` pixels.

    Raises:
        ValueError: `input_size` not positive or `crop_fraction` outside (0, 1].
    """
    if input_size <= 0:
        raise ValueError(f"input_size={input_size!r} must be a positive integer")
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction={crop_fraction!r} must be in (0, 1]")
    return math.ceil(DRAFT_MARGIN * input_size / crop_fraction)


def load_prepared(
    source: ImageSource, size: int, *, crop_fraction: float = 1.0, resample: str = "bicubic"
) -> np.ndarray:
    """Decode a photo at the scale the network input needs, then crop and resize it.

    Args:
        source: a path, bytes, or a binary file object.
        size: the output side in pixels.
        crop_fraction: the central square's share of the short side. Defaults to 1.0.
        resample: one of `RESAMPLE`. Defaults to "bicubic".

    Returns:
        uint8 `(size, size, 3)`.

    Raises:
        ImageError: the source is not a usable image.
    """
    image = load_image(source, min_side=draft_min_side(size, crop_fraction))
    return prepare_image(image, size, crop_fraction=crop_fraction, resample=resample)


def prepare_image(
    image: Image.Image,
    size: int,
    *,
    crop_fraction: float = 1.0,
    resample: str = "bicubic",
) -> np.ndarray:
    """Crop the central square and resize it: the geometric preprocessing of a network input.

    Value normalisation (scaling to [-1, 1] and so on) lives inside the models,
    so this stays uint8.

    Args:
        image: a PIL image (converted to RGB if it is not).
        size: the output side in pixels.
        crop_fraction: the central square's side as a share of the short side,
            in (0, 1]. Defaults to 1.0 (the largest central square).
        resample: one of `RESAMPLE` ("bicubic", "bilinear", "lanczos", "area",
            "box", "nearest"). Defaults to "bicubic".

    Returns:
        A uint8 array of shape `(size, size, 3)`.

    Raises:
        ValueError: `size`, `crop_fraction` or `resample` out of range.
    """
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"size={size!r} must be a positive integer")
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction={crop_fraction!r} must be in (0, 1]")
    if resample not in RESAMPLE:
        raise ValueError(f"resample={resample!r} is unknown; choose one of {sorted(RESAMPLE)}")
    if not isinstance(image, Image.Image):
        raise TypeError(f"image={type(image).__name__} must be a PIL.Image.Image")
    rgb = image if image.mode == "RGB" else to_rgb(image)
    width, height = rgb.size
    side = max(1, round(min(width, height) * crop_fraction))
    left = (width - side) // 2
    top = (height - side) // 2
    box = (left, top, left + side, top + side)
    resized = rgb.resize((size, size), RESAMPLE[resample], box=box)
    return np.asarray(resized, dtype=np.uint8).copy()


def make_thumbnail(source: ImageSource, *, max_side: int = 160) -> Image.Image:
    """A small RGB preview for the dashboard, keeping the aspect ratio.

    Args:
        source: a path, bytes, or a binary file object.
        max_side: the longest side of the preview in pixels. Defaults to 160.

    Returns:
        An RGB image whose longer side is at most `max_side`.

    Raises:
        ImageError: the file cannot be used (see `load_image`).
        ValueError: `max_side` is not a positive integer.
    """
    if not isinstance(max_side, int) or max_side <= 0:
        raise ValueError(f"max_side={max_side!r} must be a positive integer")
    image = load_image(source, min_side=max_side)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def thumbnail_png(source: ImageSource, *, max_side: int = 160) -> bytes:
    """`make_thumbnail` encoded as PNG bytes (cheap to cache and to send to a browser).

    Args:
        source: a path, bytes, or a binary file object.
        max_side: the longest side in pixels. Defaults to 160.

    Returns:
        PNG bytes.

    Raises:
        ImageError: the file cannot be used.
    """
    buffer = io.BytesIO()
    make_thumbnail(source, max_side=max_side).save(buffer, format="PNG")
    return buffer.getvalue()
