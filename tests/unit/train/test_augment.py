"""engine.train.augment: retrain.py's distortions, deterministic per seed."""

from __future__ import annotations

import numpy as np

from engine.train.augment import distort


def test_distort_crops_to_size_and_flips_deterministically_per_seed() -> None:
    image = np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3)
    first = distort(image, 32, np.random.default_rng(3), flip_left_right=True, random_crop=20)
    again = distort(image, 32, np.random.default_rng(3), flip_left_right=True, random_crop=20)
    assert first.shape == (32, 32, 3)
    assert np.array_equal(first, again)
