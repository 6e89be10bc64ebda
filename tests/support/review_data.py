"""Datasets with known faults for the review's tests and benchmark: flipped labels, a leaked copy, a chart.

Each helper changes a folder-per-class tree on disk the way a real mistake
would (a photo filed in the wrong folder, a resized re-encoded copy of a
test photo saved among the training photos, an unrelated picture dropped
into a class) and returns what it did, so a test can check the review finds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.data.splits import split_bucket


def flip_labels(root: Path, fraction: float = 0.05, *, seed: int = 0) -> set[str]:
    """Move `fraction` of the photos into another class folder (chosen at random); return their new paths.

    Returns:
        The moved photos' paths relative to `root` after the move.
    """
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    photos = sorted(p for c in classes for p in (root / c).iterdir() if p.is_file())
    count = max(1, round(fraction * len(photos)))
    moved = set()
    for index in rng.choice(len(photos), count, replace=False):
        photo = photos[int(index)]
        others = [c for c in classes if c != photo.parent.name]
        target = root / others[int(rng.integers(len(others)))] / photo.name
        photo.rename(target)
        moved.add(target.relative_to(root).as_posix())
    return moved


def train_name(stem: str, suffix: str, *, validation: float = 10, testing: float = 10) -> str:
    """A file name starting with `stem` that retrain.py's hash puts in the training split."""
    n = 0
    while split_bucket(f"{stem}{n}{suffix}") < validation + testing:
        n += 1
    return f"{stem}{n}{suffix}"


def leak_copy(photo: Path, *, scale: float | None = None, quality: int = 85) -> Path:
    """Save a resized, re-encoded JPEG copy of `photo` beside it, under a name that falls in train.

    The copy is 0.9x the size, or 1.25x for a photo under 64 px (the scan refuses sides
    under 32); a PNG is re-encoded as PNG (JPEG blocks swamp a 32 px scan), others as JPEG.
    """
    with Image.open(photo) as image:
        scale = scale or (0.9 if min(image.size) >= 64 else 1.25)
        copy = image.convert("RGB").resize(
            (max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.BILINEAR
        )
    if photo.suffix.lower() == ".png":
        target = photo.parent / train_name("copy-of-", ".png")
        copy.save(target, "PNG", optimize=True)
    else:
        target = photo.parent / train_name("copy-of-", ".jpg")
        copy.save(target, "JPEG", quality=quality)
    return target


def draw_chart(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """Draw a bar chart (white page, blue bars, black axes) as a PNG at `path`."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    width, height = size
    for k, value in enumerate((0.2, 0.5, 0.35, 0.8, 0.6)):
        left = 30 + k * (width - 40) // 5
        draw.rectangle(
            [left, height - 10 - value * (height - 30), left + 30, height - 10], fill=(60, 90, 200)
        )
    draw.line([20, height - 10, width - 10, height - 10], fill="black", width=2)
    draw.line([20, 10, 20, height - 10], fill="black", width=2)
    image.save(path, "PNG")
    return path
