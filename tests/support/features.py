"""Synthetic feature vectors for head-fit tests: what a frozen backbone would hand the head."""

from __future__ import annotations

import numpy as np


def blobs(
    n: int, *, dims: int = 12, classes: int = 3, seed: int = 0, spread: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian blobs, one per class, scaled and shifted per feature.

    Column 0 is constant (a dead feature, as ReLU6 backbones have), so a fit
    that standardises must not divide by zero.

    Args:
        n: rows.
        dims: features per row. Defaults to 12.
        classes: classes. Defaults to 3.
        seed: the random seed. Defaults to 0.
        spread: the blobs' standard deviation (1.5 overlaps, 0.3 separates). Defaults to 1.5.

    Returns:
        float32 `(n, dims)` features and int `(n,)` labels.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.2, (classes, dims))
    y = rng.integers(0, classes, n)
    x = centres[y] + rng.normal(0, spread, (n, dims))
    x[:, 0] = 3.0
    return (x * rng.uniform(0.2, 5.0, dims) + rng.normal(0, 3, dims)).astype(np.float32), y
