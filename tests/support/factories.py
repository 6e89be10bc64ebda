"""Tiny image data for tests, made in a test's own folder.

`write_class_folders` writes a folder-per-class tree whose classes differ in
hue and pattern, so a real classifier learns them from a handful of images.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# Hue-distinct base colours, one per class index (wraps around).
_COLOURS = [
    (200, 40, 40),
    (40, 160, 60),
    (40, 70, 200),
    (220, 200, 40),
    (150, 60, 180),
    (30, 180, 190),
]


def make_image(class_index: int, variant: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """An RGB image for class `class_index`; `variant` changes noise and position."""
    rng = np.random.default_rng(1000 * class_index + variant)
    width, height = size
    base = np.array(_COLOURS[class_index % len(_COLOURS)], dtype=np.float32)
    pixels = np.empty((height, width, 3), dtype=np.float32)
    pixels[:] = base * rng.uniform(0.7, 1.1)
    # a class-specific pattern: stripes whose period depends on the class
    period = 4 + 3 * (class_index % 4)
    offset = int(rng.integers(0, period))
    stripes = ((np.arange(width) + offset) // period) % 2 == 0
    pixels[:, stripes] *= 0.55
    pixels += rng.normal(0, 12, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def image_bytes(image: Image.Image, fmt: str = "JPEG") -> bytes:
    """Encode `image` in `fmt` (a PIL format name)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write_class_folders(
    root: Path,
    counts: dict[str, int],
    *,
    size: tuple[int, int] = (64, 48),
    fmt: str = "JPEG",
) -> Path:
    """Write `counts[name]` images into `root/name/` for each class; return `root`."""
    suffix = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp"}[fmt]
    for class_index, (name, count) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for variant in range(count):
            data = image_bytes(make_image(class_index, variant, size), fmt)
            (folder / f"{name}_{variant:03d}{suffix}").write_bytes(data)
    return root
