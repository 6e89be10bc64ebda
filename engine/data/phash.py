"""Perceptual hashes: a 256-bit DCT hash per photo, computed once per file and cached beside the scan.

The hash is the usual DCT ("pHash") recipe: the photo in greyscale, reduced
to `DCT_SIDE` x `DCT_SIDE` with an antialiasing filter, its 2-D DCT, and one
bit per coefficient of the `HASH_SIDE` x `HASH_SIDE` lowest frequencies
(above or below their median). A resized or re-encoded copy keeps its low
frequencies, so its hash differs from the original's in few bits (a distinct
photo differs in about half of them). It is a dozen lines on numpy and
scipy, which the studio ships anyway; the `imagehash` package computes the
same recipe but adds PyWavelets for wavelet hashes we do not use.

Hashes are cached per dataset under `cache_dir()/scan/<key>.phash.json`,
beside the scan cache, by each file's content hash (so a rename or a move
keeps it), with the photo's size, which the near-duplicate confirmation
needs (`engine.data.ssim`). A damaged cache is moved aside and rebuilt; one
that cannot be written only costs time next run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.core.errors import ImageError
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.data import scan_cache
from engine.data.images import ImageSource, load_image, probe_image
from engine.data.json_cache import load_entries, save_entries

HASH_SIDE = 16
HASH_BITS = HASH_SIDE * HASH_SIDE  # 256
# The greyscale square the DCT is taken of: 4x the hash side, as the common recipe does.
DCT_SIDE = 4 * HASH_SIDE
PHASH_CACHE_VERSION = 1


@dataclass(frozen=True)
class PhotoHash:
    """One photo's perceptual hash and size.

    Args:
        bits: the hash, `HASH_BITS // 8` bytes (numpy `packbits` order).
        width: the photo's displayed width.
        height: its displayed height.
    """

    bits: bytes
    width: int
    height: int


def dct_hash(image: Image.Image) -> bytes:
    """The 256-bit DCT hash of a decoded image.

    Args:
        image: a PIL image in any mode.

    Returns:
        `HASH_BITS // 8` bytes.
    """
    from scipy.fft import dctn

    grey = image.convert("L").resize((DCT_SIDE, DCT_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    low = dctn(np.asarray(grey, np.float64), type=2, norm="ortho")[:HASH_SIDE, :HASH_SIDE]
    return np.packbits((low > np.median(low)).ravel()).tobytes()


def hash_photo(source: ImageSource) -> PhotoHash:
    """Decode a photo (at a reduced scale when it is a big JPEG) and hash it.

    Raises:
        ImageError: the photo cannot be decoded.
    """
    if isinstance(source, bytes | bytearray | str | os.PathLike):
        info = probe_image(source)  # the real size: a big JPEG is decoded at a reduced scale
        image = load_image(source, min_side=2 * DCT_SIDE)
        return PhotoHash(dct_hash(image), info.width, info.height)
    image = load_image(source)
    return PhotoHash(dct_hash(image), image.width, image.height)


def hamming(a: bytes, b: bytes) -> int:
    """The number of bits in which two hashes differ."""
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def bit_matrix(hashes: Sequence[bytes | None]) -> np.ndarray:
    """Hashes as rows of +1/-1 (float32), so `HASH_BITS - rows @ rows.T` is twice the Hamming distance.

    A missing hash (None) is a row of zeros, which matches nothing.
    """
    if not hashes:
        return np.zeros((0, HASH_BITS), np.float32)
    raw = b"".join(h if h is not None else bytes(HASH_BITS // 8) for h in hashes)
    bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(len(hashes), -1), axis=1)
    signs = bits.astype(np.float32) * 2.0 - 1.0
    signs[[h is None for h in hashes]] = 0.0
    return signs


def cache_file(root: Path) -> Path:
    """Where the hashes of dataset folder `root` (resolved) are kept: beside its scan cache."""
    return scan_cache.cache_file(root).with_suffix(".phash.json")


def _load(root: Path) -> dict[str, list[Any]]:
    return load_entries(
        cache_file(root),
        what="the perceptual hash cache",
        key="hashes",
        header={"version": PHASH_CACHE_VERSION, "root": str(root)},
        valid=_valid,
    )


def _valid(entry: Any) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], str)
        and len(entry[0]) == HASH_BITS // 4
        and all(c in "0123456789abcdef" for c in entry[0])
        and all(type(v) is int and v > 0 for v in entry[1:])
    )


def _save(root: Path, entries: dict[str, list[Any]]) -> None:
    save_entries(
        cache_file(root), {"version": PHASH_CACHE_VERSION, "root": str(root), "hashes": entries}
    )


def _hash_or_none(path: Path) -> PhotoHash | None:
    try:
        return hash_photo(path)
    except (ImageError, OSError):
        return None


def photo_hashes(
    root: str | os.PathLike[str],
    records: Sequence[Any],
    *,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> list[PhotoHash | None]:
    """The perceptual hash of each record, from the cache or computed now (and cached).

    Args:
        root: the dataset folder (the cache is per dataset).
        records: `ImageRecord`s of its scan (`path`, `sha256`).
        progress: called with `Progress("hashes", ...)`. Defaults to None.
        workers: decoding threads. Defaults to 2 per core, 2 to 8.

    Returns:
        One `PhotoHash` per record (None for a photo that cannot be decoded now).
    """
    real = Path(root).expanduser().resolve()
    cached = _load(real)
    out: list[PhotoHash | None] = [None] * len(records)
    todo: list[int] = []
    for n, record in enumerate(records):
        entry = cached.get(record.sha256)
        if entry is not None:
            out[n] = PhotoHash(bytes.fromhex(entry[0]), entry[1], entry[2])
        else:
            todo.append(n)
    tracker = ProgressTracker("hashes", len(records), progress, unit="images")
    tracker.advance(len(records) - len(todo), cached=len(records) - len(todo))
    if todo:
        threads = workers or max(2, min(8, 2 * (os.cpu_count() or 1)))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for n, found in zip(
                todo, pool.map(lambda k: _hash_or_none(records[k].path), todo), strict=True
            ):
                out[n] = found
                if found is not None:
                    cached[records[n].sha256] = [found.bits.hex(), found.width, found.height]
                tracker.advance()
        _save(real, cached)
    tracker.finish()
    return out
