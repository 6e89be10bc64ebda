"""Near-duplicates by two signals, each candidate pair confirmed by the photos themselves.

1. **Perceptual hashes** (`engine.data.phash`): every pair whose 256-bit DCT
   hashes differ in at most `HASH_CANDIDATE_BITS` bits (a distinct photo
   differs in about 128). Resizing and re-encoding keep a photo's low
   frequencies, so this finds resized and re-saved copies that the
   backbone's features place among ordinary neighbours.
2. **Features, with a radius relative to the data**: pairs that are among
   each other's `MUTUAL_NEIGHBOURS` nearest photos (cosine distance of the
   backbone features) and closer than `FEATURE_RADIUS` times the median
   distance of a photo to its nearest neighbour. A dataset of look-alikes
   (scanned digits) and one of varied photos get the cut that fits each,
   where an absolute cosine cut fitted neither; features see through crops
   and colour changes that move a hash.

Each candidate is then confirmed by the SSIM of the two photos at the
smaller one's size (`engine.data.ssim`); a pair from both signals needs
less (`CONFIRM_SSIM_BOTH`). Confirmed pairs are joined into groups by
connected components. Without the photos (features alone, in tests and the
synthetic benchmark) the feature channel's pairs stand unconfirmed.

Everything is computed block by block (`BLOCK_CELLS` similarities at once),
so memory stays flat however many photos there are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.data.phash import HASH_BITS

# Candidate pairs from hashes: at most this many of the 256 bits differ. Copies resized 0.5-2x or
# re-saved as JPEG 60-95 differ in a median 2-8 bits; the closest distinct photo tiles in 98
# (bench/bench_near_duplicates.py).
HASH_CANDIDATE_BITS = 64
# Candidate pairs from features: among each other's nearest photos, and nearer than this share
# of the median nearest-neighbour distance.
MUTUAL_NEIGHBOURS = 5
FEATURE_RADIUS = 0.6
# The SSIM (at the smaller photo's size) a candidate needs to count: from one signal, from both.
CONFIRM_SSIM = 0.80
CONFIRM_SSIM_BOTH = 0.70
# ... and its dissimilarity (1 - SSIM) at most this share of each photo's with an ordinary look-alike.
CONFIRM_RELATIVE = 0.25
# Similarities held at once (16 Mi cells = 64 MiB of float32).
BLOCK_CELLS = 1 << 24
SIGNALS = ("hash", "features", "both")


@dataclass(frozen=True)
class NearDuplicatePairs:
    """Confirmed near-duplicate pairs (i < j), one entry per pair.

    Attributes:
        i: first photo of each pair.
        j: second photo.
        score: the evidence, 0 to 1: the SSIM when confirmed, else the cosine similarity.
        signal: which channel proposed it ("hash", "features" or "both").
        bits: Hamming distance of the hashes (-1 without hashes).
        distance: feature distance in units of the median nearest-neighbour distance.
    """

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    signal: np.ndarray
    bits: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.i)


def block_rows(n: int, cells: int = BLOCK_CELLS) -> int:
    """How many rows of an `(n, n)` similarity matrix one block holds."""
    return max(1, min(n, cells // max(n, 1)))


def hash_candidates(
    signs: np.ndarray, max_bits: int = HASH_CANDIDATE_BITS, *, cells: int = BLOCK_CELLS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) whose hashes differ in at most `max_bits` bits (the benchmark's sweep).

    Args:
        signs: `(N, HASH_BITS)` rows of +1/-1 (`engine.data.phash.bit_matrix`); an all-zero row
            (no hash) matches nothing.
        max_bits: the most differing bits. Defaults to `HASH_CANDIDATE_BITS`.
        cells: products held at once. Defaults to `BLOCK_CELLS`.

    Returns:
        `(i, j, bits)`.
    """
    n = len(signs)
    valid = np.abs(signs).sum(axis=1) > 0
    need = HASH_BITS - 2 * max_bits  # dot product of +-1 rows = bits - 2 * hamming
    rows, cols, found = [], [], []
    step = block_rows(n, cells)
    for start in range(0, n, step):
        block = signs[start : start + step] @ signs.T
        i, j = np.nonzero(block >= need)
        keep = (j > i + start) & valid[i + start] & valid[j]
        rows.append(i[keep] + start)
        cols.append(j[keep])
        found.append(((HASH_BITS - block[i[keep], j[keep]]) / 2).astype(np.int64))
    if not rows:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(found)


def nearest(rows: np.ndarray, k: int, *, cells: int = BLOCK_CELLS) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `k` most similar other rows by dot product, most similar first (block by block).

    Args:
        rows: `(N, D)` float32 (unit features, or +1/-1 hash rows).
        k: how many (at most N - 1).
        cells: products held at once. Defaults to `BLOCK_CELLS`.

    Returns:
        `(indices, dot products)`, each `(N, k)`.
    """
    n = len(rows)
    top = np.zeros((n, k), np.int64)
    top_dot = np.zeros((n, k), np.float32)
    if k <= 0:
        return top, top_dot
    step = block_rows(n, cells)
    for start in range(0, n, step):
        block = rows[start : start + step] @ rows.T
        here = np.arange(block.shape[0])
        block[here, here + start] = -np.inf  # not a photo's own neighbour
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        dots = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-dots, axis=1, kind="stable")
        top[start : start + len(here)] = np.take_along_axis(part, order, axis=1)
        top_dot[start : start + len(here)] = np.take_along_axis(dots, order, axis=1)
    return top, top_dot


def mutual(top: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) where each lists the other among its `top` neighbours, among the `keep` entries.

    Returns:
        `(i, j, column of j in i's list)`.
    """
    n, k = top.shape
    i = np.repeat(np.arange(n), k)
    j = top.ravel()
    col = np.tile(np.arange(k), n)
    ok = keep.ravel()
    i, j, col = i[ok], j[ok], col[ok]
    listed = set(zip(i.tolist(), j.tolist(), strict=True))
    both = np.array(
        [a < b and (b, a) in listed for a, b in zip(i.tolist(), j.tolist(), strict=True)], bool
    )
    if not len(both):
        both = np.zeros(0, bool)
    return i[both], j[both], col[both]


def hash_neighbour_pairs(
    signs: np.ndarray,
    *,
    max_bits: int = HASH_CANDIDATE_BITS,
    neighbours: int = MUTUAL_NEIGHBOURS,
    cells: int = BLOCK_CELLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours by hash that differ in at most `max_bits` bits.

    Args:
        signs: `(N, HASH_BITS)` +1/-1 rows; an all-zero row (no hash) has no neighbours.
        max_bits: the most differing bits. Defaults to `HASH_CANDIDATE_BITS`.
        neighbours: each photo's list. Defaults to `MUTUAL_NEIGHBOURS`.
        cells: products held at once. Defaults to `BLOCK_CELLS`.

    Returns:
        `(i, j, bits, reference)`: the pairs, their differing bits, and per photo the neighbour
        just beyond its list (an ordinary look-alike, -1 when there is none).
    """
    n = len(signs)
    k = min(neighbours + 1, n - 1)
    empty = np.zeros(0, np.int64)
    if k <= 0:
        return empty, empty, empty, np.full(n, -1)
    top, dot = nearest(signs, k, cells=cells)
    valid = np.abs(signs).sum(axis=1) > 0
    bits = np.rint((HASH_BITS - dot) / 2).astype(np.int64)
    reference = np.where(valid, top[:, -1], -1) if k > neighbours else np.full(n, -1)
    listed = top[:, :neighbours] if k > neighbours else top
    keep = (bits[:, : listed.shape[1]] <= max_bits) & valid[:, None] & valid[listed]
    i, j, col = mutual(listed, keep)
    return i, j, bits[i, col], reference


def feature_candidates(
    unit: np.ndarray,
    *,
    radius: float = FEATURE_RADIUS,
    neighbours: int = MUTUAL_NEIGHBOURS,
    cells: int = BLOCK_CELLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours closer than `radius` times the median nearest-neighbour distance.

    Args:
        unit: `(N, F)` unit-length features.
        radius: the share of the median nearest-neighbour distance. Defaults to `FEATURE_RADIUS`.
        neighbours: how many nearest photos each photo's list holds. Defaults to `MUTUAL_NEIGHBOURS`.
        cells: similarities held at once. Defaults to `BLOCK_CELLS`.

    Returns:
        `(i, j, relative distance, cosine similarity)` for pairs i < j.
    """
    n = len(unit)
    k = min(neighbours, n - 1)
    if k <= 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0), np.zeros(0)
    top, sims = nearest(unit, k, cells=cells)
    scale = max(float(np.median(1.0 - sims[:, 0])), 1e-6)
    i, j, col = mutual(top, (1.0 - sims) <= radius * scale)
    sim = sims[i, col].astype(np.float64)
    return i, j, (1.0 - sim) / scale, sim


def find_pairs(
    unit: np.ndarray,
    *,
    signs: np.ndarray | None = None,
    similarity: Callable[[int, int], float] | None = None,
    radius: float = FEATURE_RADIUS,
    min_ssim: float = CONFIRM_SSIM,
    cells: int = BLOCK_CELLS,
) -> NearDuplicatePairs:
    """Near-duplicate pairs from both signals, confirmed by `similarity` when it is given.

    A candidate counts when its SSIM reaches `min_ssim` (`CONFIRM_SSIM_BOTH` when both
    signals proposed it) and its dissimilarity (1 - SSIM) is at most `CONFIRM_RELATIVE` times
    that of each photo with its reference look-alike (the photo just beyond its hash
    neighbours): in a set of look-alikes (digits) distinct photos reach SSIM 0.95, so a copy
    must stand out from them, where among varied photos the floor alone decides.

    Args:
        unit: `(N, F)` unit-length features.
        signs: `(N, HASH_BITS)` hash rows (`engine.data.phash.bit_matrix`). Defaults to None
            (the feature channel alone).
        similarity: `(i, j) -> SSIM` of two photos (`engine.data.ssim.PhotoComparer`).
            Defaults to None (candidates are not confirmed: only the feature channel's
            pairs are kept).
        radius: the feature channel's radius. Defaults to `FEATURE_RADIUS`.
        min_ssim: the SSIM floor of a pair from one signal. Defaults to `CONFIRM_SSIM`.
        cells: similarities held at once. Defaults to `BLOCK_CELLS`.

    Returns:
        The confirmed `NearDuplicatePairs`.
    """
    n = len(unit)
    fi, fj, fdist, fsim = feature_candidates(unit, radius=radius, cells=cells)
    pairs: dict[tuple[int, int], list[float]] = {}  # (i, j) -> [bits, relative distance, cosine]
    for a, b, d, s in zip(fi.tolist(), fj.tolist(), fdist.tolist(), fsim.tolist(), strict=True):
        pairs[(a, b)] = [-1, d, s]
    from_hash: set[tuple[int, int]] = set()
    reference = np.full(n, -1)
    if signs is not None and similarity is not None:
        hi, hj, bits, reference = hash_neighbour_pairs(signs, cells=cells)
        for a, b, h in zip(hi.tolist(), hj.tolist(), bits.tolist(), strict=True):
            from_hash.add((a, b))
            pairs.setdefault((a, b), [-1, np.nan, np.nan])[0] = h
    looks: dict[int, float] = {}  # a photo's SSIM with its reference look-alike

    def ordinary(x: int) -> float:
        if x not in looks:
            r = int(reference[x])
            looks[x] = similarity(x, r) if similarity is not None and r >= 0 else 0.0
        return looks[x]

    kept: list[tuple[int, int, float, str, int, float]] = []
    floor_both = min_ssim - (CONFIRM_SSIM - CONFIRM_SSIM_BOTH)
    for (a, b), (h, d, s) in sorted(pairs.items()):
        by_features = not np.isnan(d)
        signal = (
            "both" if by_features and (a, b) in from_hash else ("features" if by_features else "hash")
        )
        if similarity is None:
            kept.append((a, b, float(s), signal, int(h), float(d)))
            continue
        score = similarity(a, b)
        if score < (floor_both if signal == "both" else min_ssim):
            continue
        if all(
            (1.0 - score) <= CONFIRM_RELATIVE * (1.0 - ordinary(x))
            for x in (a, b)
            if reference[x] not in (-1, a, b)
        ):
            kept.append((a, b, float(score), signal, int(h), float(d)))
    if not kept:
        empty = np.zeros(0, np.int64)
        return NearDuplicatePairs(empty, empty, np.zeros(0), np.zeros(0, "<U8"), empty, np.zeros(0))
    a, b, score, signal, h, d = zip(*kept, strict=True)
    return NearDuplicatePairs(
        np.array(a, np.int64),
        np.array(b, np.int64),
        np.array(score, np.float64),
        np.array(signal),
        np.array(h, np.int64),
        np.array(d, np.float64),
    )


def groups_of(n: int, i: np.ndarray, j: np.ndarray) -> list[np.ndarray]:
    """Connected components of the pairs: groups of 2 or more photos, largest first."""
    if len(i) == 0:
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    groups = [np.flatnonzero(component == c) for c in np.flatnonzero(sizes >= 2)]
    return sorted(groups, key=lambda g: (-len(g), int(g[0])))
