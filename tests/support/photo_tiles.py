"""Real photo content for near-duplicate and label-next tests: tiles of the two fixture photos.

`tests/fixtures/china.jpg` and `flower.jpg` (640x427) cut into non-overlapping
square tiles, the flat ones (clear sky, blurred background) left out, give
distinct real images of two kinds; `copy_of` makes the transformed copies the
review must find (resized, re-encoded, brightened).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from tests.support.factories import FIXTURES

# Tiles flatter than this (grey standard deviation) are left out: no one can tell two of them apart.
MIN_TEXTURE = 12.0


def tiles(name: str, *, side: int = 64) -> list[Image.Image]:
    """The textured tiles of fixture photo `name` ("china" or "flower"), in reading order."""
    with Image.open(FIXTURES / f"{name}.jpg") as photo:
        image = photo.convert("RGB")
    found = []
    for y in range(0, image.height - side + 1, side):
        for x in range(0, image.width - side + 1, side):
            tile = image.crop((x, y, x + side, y + side))
            if np.asarray(tile.convert("L"), np.float64).std() >= MIN_TEXTURE:
                found.append(tile)
    return found


def copy_of(image: Image.Image, how: str) -> Image.Image:
    """A transformed copy: "half" (0.5x), "double" (2x), "jpeg60" (re-saved at quality 60), "bright" (1.2x)."""
    if how == "half":
        return image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)
    if how == "double":
        return image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC)
    if how == "jpeg60":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=60)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if how == "bright":
        return ImageEnhance.Brightness(image).enhance(1.2)
    raise ValueError(f"how={how!r} is unknown")


def write_tile_dataset(root: Path, per_class: int = 12, *, side: int = 64) -> Path:
    """`root/china/*.png` and `root/flower/*.png`: `per_class` real tiles of each photo; return `root`."""
    for name in ("china", "flower"):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for n, tile in enumerate(tiles(name, side=side)[:per_class]):
            tile.save(folder / f"{name}_{n:03d}.png")
    return root
