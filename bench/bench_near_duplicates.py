"""Near-duplicates (issue 19): recall at fixed precision of each signal, and of the review's combination.

Real photos, no download:

- **tiles**: the two photos scikit-learn ships (`load_sample_images`: china.jpg and
  flower.jpg, 640x427) cut into non-overlapping 64x64 tiles of different regions (roof,
  trees, petals, leaves), leaving out the flat ones (`MIN_TEXTURE`: clear sky, blurred
  background): 70 distinct images;
- **digits**: scikit-learn's 1,797 scanned handwritten digits (`load_digits`, 8x8)
  written as 64x64 PNGs (nearest neighbour), a set of look-alikes.

Each tile and 600 of the digits (chosen at random, seed 0) get three transformed copies
(original k gets transforms k, k + 5 and k + 9 of the 13 below, so every transform is used
alike and a group holds 4 photos, as real copies come: a few, not dozens), saved among the
distinct photos: resized 0.5x, 0.7x, 1.5x, 2x (bicubic, PNG), re-saved as
JPEG at quality 60, 75 and 95, resized 0.7x and saved as JPEG 85, centred crops of 5 %
and 10 % of each side's length and a 5 % crop off one corner (each resized back to the
original size), and brightness 0.8x and 1.2x. The folders are scanned, the features come
from the bottleneck cache (EfficientNet-Lite0, computed once), the hashes from the hash cache.

Reported:

1. For each signal alone and with the SSIM confirmation, the best **recall at
   precision >= 99.9 %** over all cuts of its score (pairs of photos; a pair is right when
   both come from one original; recall counts original-copy pairs), and the cut that gives it.
2. The review's own combination at its shipped settings: group precision (of the pairs of
   photos it puts in one group, the share that come from one original), recall (the share of
   copies in their original's group), per transform, and the time of each part.

    python bench/bench_near_duplicates.py [--sets tiles,digits] [--digit_originals 600]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


TILE = 64
# Tiles flatter than this (grey standard deviation) are left out: 50 of the 120 are clear sky or
# blurred background, which no method (nor a person) can tell from one another.
MIN_TEXTURE = 12.0
PRECISION = 0.999
COPY_STEPS = (0, 5, 9)
# name -> (function of a PIL image, file format)
TRANSFORMS = {
    "resize 0.5x": (lambda im: _resize(im, 0.5), "PNG"),
    "resize 0.7x": (lambda im: _resize(im, 0.7), "PNG"),
    "resize 1.5x": (lambda im: _resize(im, 1.5), "PNG"),
    "resize 2x": (lambda im: _resize(im, 2.0), "PNG"),
    "JPEG q60": (lambda im: im, ("JPEG", 60)),
    "JPEG q75": (lambda im: im, ("JPEG", 75)),
    "JPEG q95": (lambda im: im, ("JPEG", 95)),
    "resize 0.7x + JPEG q85": (lambda im: _resize(im, 0.7), ("JPEG", 85)),
    "crop 5 %": (lambda im: _crop(im, 0.05, centred=True), "PNG"),
    "crop 10 %": (lambda im: _crop(im, 0.10, centred=True), "PNG"),
    "crop 5 % off a corner": (lambda im: _crop(im, 0.05, centred=False), "PNG"),
    "brightness 0.8x": (lambda im: ImageEnhance.Brightness(im).enhance(0.8), "PNG"),
    "brightness 1.2x": (lambda im: ImageEnhance.Brightness(im).enhance(1.2), "PNG"),
}
RESIZE_AND_REENCODE = [n for n in TRANSFORMS if n.startswith(("resize", "JPEG"))]


def _resize(image: Image.Image, scale: float) -> Image.Image:
    size = (max(32, round(image.width * scale)), max(32, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def _crop(image: Image.Image, share: float, *, centred: bool) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * share), round(h * share)
    box = (dx // 2, dy // 2, w - (dx - dx // 2), h - (dy - dy // 2)) if centred else (dx, dy, w, h)
    return image.crop(box).resize((w, h), Image.Resampling.BICUBIC)


def _save(image: Image.Image, path: Path, fmt) -> None:
    if isinstance(fmt, tuple):
        image.convert("RGB").save(path.with_suffix(".jpg"), fmt[0], quality=fmt[1])
    else:
        image.save(path.with_suffix(".png"), fmt)


def _tiles() -> list[tuple[str, Image.Image]]:
    from sklearn.datasets import load_sample_images

    found = []
    for name, pixels in zip(("china", "flower"), load_sample_images().images, strict=True):
        image = Image.fromarray(pixels)
        for y in range(0, image.height - TILE + 1, TILE):
            for x in range(0, image.width - TILE + 1, TILE):
                tile = image.crop((x, y, x + TILE, y + TILE))
                if np.asarray(tile.convert("L"), np.float64).std() >= MIN_TEXTURE:
                    found.append((name, tile))
    return found


def _digits() -> list[tuple[str, Image.Image]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    return [
        (str(int(t)), Image.fromarray(np.kron(p, np.ones((8, 8), np.uint8)), "L").convert("RGB"))
        for p, t in zip(pixels, digits.target, strict=True)
    ]


def write_set(name: str, root: Path, copies: int | None) -> Path:
    """Write the distinct photos and the copies of `copies` of them (all when None)."""
    photos = _tiles() if name == "tiles" else _digits()
    chosen = set(range(len(photos)))
    if copies is not None and copies < len(photos):
        chosen = set(np.random.default_rng(0).choice(len(photos), copies, replace=False).tolist())
    for index, (folder, image) in enumerate(photos):
        (root / folder).mkdir(parents=True, exist_ok=True)
        _save(image, root / folder / f"s{index:04d}_orig", "PNG")
        if index in chosen:
            for t in ((index + step) % len(TRANSFORMS) for step in COPY_STEPS):
                transform, fmt = list(TRANSFORMS.values())[t]
                _save(transform(image), root / folder / f"s{index:04d}_t{t:02d}", fmt)
    return root


def _source(rel: str) -> tuple[int, str]:
    stem = Path(rel).stem
    src, tag = stem.split("_")
    return int(src[1:]), ("orig" if tag == "orig" else list(TRANSFORMS)[int(tag[1:])])


def recall_at_precision(scores: np.ndarray, right: np.ndarray, wanted: np.ndarray, total: int):
    """The best recall of wanted pairs at precision >= PRECISION over cuts of `scores` (higher = surer)."""
    if len(scores) == 0:
        return 0.0, None, 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(right[order])
    hits = np.cumsum(wanted[order])
    precision = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(precision >= PRECISION)
    if len(ok) == 0:
        return 0.0, None, float(precision.max())
    # a cut can only fall between different scores
    best = max(ok, key=lambda k: hits[k])
    return hits[best] / total, float(scores[order][best]), float(precision[best])


def run_set(name: str, work: Path, copies: int | None) -> None:
    from engine.core.progress import TerminalBar
    from engine.data.phash import bit_matrix, photo_hashes
    from engine.data.scan import scan_dataset
    from engine.data.ssim import PhotoComparer
    from engine.train.review import near_duplicates as nd
    from engine.train.review.features import dataset_features
    from engine.train.review.findings import normalised

    root = write_set(name, work / name, copies)
    bar = TerminalBar(sys.stderr)
    dataset = scan_dataset(root, use_cache=False)
    start = time.perf_counter()
    result = dataset_features(dataset.images, progress=bar)
    took_features = time.perf_counter() - start
    records = [dataset.images[k] for k in result.kept]
    start = time.perf_counter()
    hashes = photo_hashes(root, records, progress=bar)
    took_hashes = time.perf_counter() - start
    n = len(records)
    source = np.array([_source(r.rel_path)[0] for r in records])
    tag = np.array([_source(r.rel_path)[1] for r in records])
    originals = int((tag == "orig").sum())
    copies_made = n - originals
    unit = normalised(result.features)
    signs = bit_matrix([h.bits for h in hashes])
    compare = PhotoComparer([r.path for r in records])
    print(f"\n== {name}: {originals} distinct photos, {copies_made} copies ({n} photos)")
    print(f"features: {took_features:.1f} s ({result.computed} computed); hashes: {took_hashes:.1f} s")

    # one candidate list per signal, loose, scored three ways
    hi, hj, bits = nd.hash_candidates(signs, max_bits=48)
    fi, fj, fdist, fsim = nd.feature_candidates(unit, radius=10.0, neighbours=20)
    wanted_total = int((tag != "orig").sum())  # original-copy pairs

    def judge(i, j):
        right = source[i] == source[j]
        wanted = right & ((tag[i] == "orig") | (tag[j] == "orig"))
        return right, wanted

    rows = []
    for label, i, j, score in (
        ("hash alone (fewest differing bits)", hi, hj, -bits.astype(float)),
        ("features, cosine similarity (an absolute cut)", fi, fj, fsim),
        ("features, distance / median NN distance", fi, fj, -fdist),
    ):
        right, wanted = judge(i, j)
        rows.append((label, *recall_at_precision(score, right, wanted, wanted_total)))
    start = time.perf_counter()
    ci, cj, _, _ = nd.hash_neighbour_pairs(signs)
    confirm_h = np.array([compare(a, b) for a, b in zip(ci, cj, strict=True)])
    near = fdist <= nd.FEATURE_RADIUS
    confirm_f = np.array([compare(a, b) for a, b in zip(fi[near], fj[near], strict=True)])
    took_ssim = time.perf_counter() - start
    for label, i, j, score in (
        (
            f"hash, mutual {nd.MUTUAL_NEIGHBOURS}-NN <= {nd.HASH_CANDIDATE_BITS} bits, then SSIM",
            ci,
            cj,
            confirm_h,
        ),
        (f"features within {nd.FEATURE_RADIUS} x median NN, then SSIM", fi[near], fj[near], confirm_f),
    ):
        right, wanted = judge(i, j)
        rows.append((label, *recall_at_precision(score, right, wanted, wanted_total)))
    print(f"\n{'signal':58} recall@P>={PRECISION:.1%}   cut      precision there")
    for label, recall, cut, precision in rows:
        cut_text = "-" if cut is None else f"{cut:.3f}"
        print(f"{label:58} {recall:8.1%}        {cut_text:>8} {precision:8.2%}")
    print(f"(SSIM of {len(confirm_h) + len(confirm_f)} candidate pairs: {took_ssim:.1f} s)")

    # the review's own combination, at its shipped settings
    start = time.perf_counter()
    pairs = nd.find_pairs(unit, signs=signs, similarity=PhotoComparer([r.path for r in records]))
    took = time.perf_counter() - start
    groups = nd.groups_of(n, pairs.i, pairs.j)
    group_of = np.full(n, -1)
    for g, members in enumerate(groups):
        group_of[members] = g
    same, right_same = 0, 0
    for members in groups:
        s = source[members]
        same += len(members) * (len(members) - 1) // 2
        right_same += sum(int(c) * (int(c) - 1) // 2 for c in np.unique(s, return_counts=True)[1])
    orig_of = {int(s): k for k, (s, t) in enumerate(zip(source, tag, strict=True)) if t == "orig"}
    found = defaultdict(list)
    for k in np.flatnonzero(tag != "orig"):
        o = orig_of[int(source[k])]
        found[str(tag[k])].append(group_of[k] >= 0 and group_of[k] == group_of[o])
    total_found = sum(sum(v) for v in found.values())
    resize_found = [x for t in RESIZE_AND_REENCODE for x in found[t]]
    print(
        f"\nreview (shipped settings: hash <= {nd.HASH_CANDIDATE_BITS} bits or features within "
        f"{nd.FEATURE_RADIUS} x median NN, SSIM >= {nd.CONFIRM_SSIM} or >= {nd.CONFIRM_SSIM_BOTH} from both, "
        f"1 - SSIM <= {nd.CONFIRM_RELATIVE} x a look-alike's): "
        f"{took:.1f} s, {len(pairs)} pairs, {len(groups)} groups"
    )
    print(
        f"group precision {right_same / max(same, 1):.2%} ({same - right_same} wrong pairs of {same}); "
        f"copies in their original's group: {total_found / copies_made:.1%}; "
        f"resize and re-encode: {np.mean(resize_found):.1%}"
    )
    signals = dict(zip(*np.unique(pairs.signal, return_counts=True), strict=True))
    print("pairs by signal: " + ", ".join(f"{k} {v}" for k, v in sorted(signals.items())))
    for t in TRANSFORMS:
        print(f"  {t:26} {np.mean(found[t]):6.1%} of {len(found[t])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="tiles,digits")
    parser.add_argument("--digit_originals", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-near-dup-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("RETRAIN_STUDIO_HOME", str(work / "home"))
        for name in args.sets.split(","):
            run_set(name, work, None if name == "tiles" else args.digit_originals)


if __name__ == "__main__":
    main()
