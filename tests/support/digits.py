"""A real dataset for head-fit tests and benchmarks: scikit-learn's bundled scanned digits.

`load_digits` ships 1,797 8x8 greyscale scans of handwritten digits (UCI
optdigits) inside scikit-learn, so no download is needed. `write_digits`
writes them as PNGs, one folder per digit, scaled up (nearest neighbour) so
a backbone's central crop keeps the whole digit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALE = 4  # 8 px -> 32 px


def write_digits(root: Path, *, per_class: int | None = None) -> Path:
    """Write the digits as `root/<digit>/<index>.png`; return `root`.

    Args:
        root: the folder to write into (created).
        per_class: keep only the first this many images of each digit. Defaults
            to None (all 1,797).

    Returns:
        `root`.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    # values 0..16 -> 0..255, white strokes on black as scanned
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    kept: dict[int, int] = {}
    for index, (pixels, target) in enumerate(zip(images, digits.target, strict=True)):
        label = int(target)
        if per_class is not None and kept.get(label, 0) >= per_class:
            continue
        kept[label] = kept.get(label, 0) + 1
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        big = np.kron(pixels, np.ones((SCALE, SCALE), np.uint8))
        Image.fromarray(big, "L").save(folder / f"digit_{index:04d}.png")
    return root
