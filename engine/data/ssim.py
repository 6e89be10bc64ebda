"""Is this the same photo? SSIM of two photos at a common size, the near-duplicate confirmation.

A candidate pair (close perceptual hashes or close features) is confirmed by
the structural similarity (SSIM, Wang et al. 2004: a Gaussian window of
sigma 1.5, the usual constants) of the two photos in greyscale, both brought
to the smaller photo's size (at most `CONFIRM_SIDE` on its long side), so
a copy saved at twice the size is compared at the size of the original.
Before comparing, each is scaled to the same mean and contrast, so a copy
made brighter or darker is judged by its structure; and a few central crops
of either side are tried, so a copy with its borders trimmed lines up.
SSIM is 1 for identical pixels and near 0 for unrelated photos.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.core.errors import ImageError
from engine.data.images import load_image

# The longest side two photos are compared at (their detail beyond it adds time, not evidence).
CONFIRM_SIDE = 96
# Central crops tried on either photo: a copy trimmed by up to ~10 % of each side lines up;
# and crops of CORNER_CROP anchored at each corner, for a copy trimmed on two sides only.
CROPS = (1.0, 0.97, 0.94, 0.91, 0.88)
CORNER_CROP = 0.95
# A pair this alike without cropping is not cropped further (it is confirmed at any cut in use).
EARLY_SSIM = 0.95
_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_MEAN, _SPREAD = 128.0, 48.0
# A flat photo (clear sky) is stretched at most this much, or its noise would be all there is to compare.
_MAX_GAIN = 3.0


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The mean structural similarity of two greyscale arrays of one shape (values 0-255).

    Args:
        a: `(H, W)` float array.
        b: `(H, W)` float array.

    Returns:
        The mean SSIM, at most 1.0.

    Raises:
        ValueError: the shapes differ.
    """
    from scipy.ndimage import gaussian_filter

    if a.shape != b.shape:
        raise ValueError(f"shapes {a.shape} and {b.shape} differ; resize to a common size first")
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, _SIGMA, mode="reflect", truncate=3.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return float(np.mean(num / den))


def common_size(size_a: tuple[int, int], size_b: tuple[int, int]) -> tuple[int, int]:
    """The size two photos are compared at: the smaller one's, at most `CONFIRM_SIDE` on its long side."""
    width, height = min(size_a, size_b, key=lambda s: s[0] * s[1])
    scale = min(1.0, CONFIRM_SIDE / max(width, height))
    return max(8, round(width * scale)), max(8, round(height * scale))


def _grey(
    image: Image.Image, crop: float, size: tuple[int, int], anchor: tuple[float, float] = (0.5, 0.5)
) -> np.ndarray:
    """The photo's crop (`crop` of each side, placed at `anchor`) at `size`, at a common mean and contrast."""
    width, height = image.size
    if crop < 1.0:
        dx, dy = (1 - crop) * width * anchor[0], (1 - crop) * height * anchor[1]
        w, h = crop * width, crop * height
        image = image.crop((round(dx), round(dy), round(dx + w), round(dy + h)))
    grey = np.asarray(
        image.convert("L").resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0), np.float64
    )
    gain = min(_MAX_GAIN, _SPREAD / max(float(grey.std()), 1e-6))
    return (grey - grey.mean()) * gain + _MEAN


@dataclass(frozen=True)
class Prepared:
    """A photo ready for comparison: greyscale, its long side at most `2 * CONFIRM_SIDE`.

    Args:
        grey: the reduced greyscale image.
        size: the photo's own size (width, height), which picks the common size.
    """

    grey: Image.Image
    size: tuple[int, int]


def prepare(image: Image.Image) -> Prepared:
    """A decoded photo reduced for comparison (`Prepared`)."""
    grey = image.convert("L")
    grey.thumbnail((2 * CONFIRM_SIDE, 2 * CONFIRM_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return Prepared(grey, image.size)


def photo_similarity(
    first: Image.Image | Prepared, second: Image.Image | Prepared, *, crops: Sequence[float] = CROPS
) -> float:
    """The SSIM of two photos at their common size, the best over central crops of either.

    Args:
        first: a PIL image or a `Prepared` one.
        second: another.
        crops: the central crops (shares of each side) tried on either. Defaults to `CROPS`.

    Returns:
        The highest SSIM found (the crops are tried only while it is below `EARLY_SSIM`).
    """
    one = first if isinstance(first, Prepared) else prepare(first)
    two = second if isinstance(second, Prepared) else prepare(second)
    size = common_size(one.size, two.size)
    a = _grey(one.grey, 1.0, size)
    b = _grey(two.grey, 1.0, size)
    best = ssim(a, b)
    tries = [(crop, (0.5, 0.5)) for crop in crops if crop < 1.0]
    tries += [(CORNER_CROP, corner) for corner in ((0, 0), (1, 0), (0, 1), (1, 1))]
    for crop, anchor in tries:
        if best >= EARLY_SSIM:
            break
        best = max(
            best,
            ssim(_grey(one.grey, crop, size, anchor), b),
            ssim(a, _grey(two.grey, crop, size, anchor)),
        )
    return best


class PhotoComparer:
    """`(i, j) -> SSIM` over a list of photo files, each decoded once (kept reduced, at most `kept`).

    Args:
        paths: the photos.
        kept: prepared photos held at once (least recently used dropped). Defaults to 4096
            (about 25 KB each).
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, kept: int = 4096) -> None:
        self.paths = list(paths)
        self.kept = kept
        self.compared = 0
        self._cache: OrderedDict[int, Prepared | None] = OrderedDict()

    def _get(self, index: int) -> Prepared | None:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        try:
            found: Prepared | None = prepare(load_image(self.paths[index], min_side=2 * CONFIRM_SIDE))
        except (ImageError, OSError):
            found = None  # gone or damaged since the scan: such a pair is not confirmed
        self._cache[index] = found
        if len(self._cache) > self.kept:
            self._cache.popitem(last=False)
        return found

    def __call__(self, i: int, j: int) -> float:
        """The SSIM of photos `i` and `j` (0.0 when either cannot be read)."""
        one, two = self._get(i), self._get(j)
        self.compared += 1
        return 0.0 if one is None or two is None else photo_similarity(one, two)
