"""`review_dataset`: scan a folder, gather what the review needs, review it, keep the result.

What it gathers, each from its cache and computing only what is missing
(each with a progress bar): the backbone's features (the bottleneck cache a
training fills), the perceptual hashes (beside the scan cache), and a
comparer that decodes the photos of candidate pairs for their SSIM. The
result is kept with the dataset (`engine.train.review.store`) and reused
while no photo changes; the photos marked *keep* are hidden on every read.
"""

from __future__ import annotations

import dataclasses
import os
import time

from engine.core.progress import ProgressCallback
from engine.data import edits
from engine.data.scan import scan_dataset
from engine.models.registry import DEFAULT_BACKBONE
from engine.train.review import near_duplicates as nd
from engine.train.review import store
from engine.train.review.report import Review, review_features


def review_dataset(
    root: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
    radius: float = nd.FEATURE_RADIUS,
    min_ssim: float = nd.CONFIRM_SSIM,
    bottleneck_dir: str | None = None,
    progress: ProgressCallback | None = None,
    studio_home: str | os.PathLike[str] | None = None,
    reuse: bool = True,
) -> Review:
    """Scan `root`, read or compute its features and hashes, and review it (or reuse the kept review).

    Args:
        root: the dataset folder (one sub-folder per class).
        architecture: the backbone whose features are used. Defaults to the studio's default.
        validation_percentage: as in `scan_dataset`. Defaults to 10.
        testing_percentage: as in `scan_dataset`. Defaults to 10.
        radius: the feature channel's radius. Defaults to `near_duplicates.FEATURE_RADIUS`.
        min_ssim: the SSIM a near-duplicate pair needs. Defaults to `near_duplicates.CONFIRM_SSIM`.
        bottleneck_dir: the feature cache folder. Defaults to the studio's.
        progress: called with scan, feature, hash and comparison progress. Defaults to None.
        studio_home: where the journal (the photos kept) and the kept review are. Defaults to
            the studio's home.
        reuse: return the kept review when no photo changed since. Defaults to True.

    Returns:
        The `Review` (`seconds` is empty for a reused one: nothing was computed).

    Raises:
        StudioError: `root` is not a dataset the studio can read.
    """
    from engine.data.phash import bit_matrix, photo_hashes
    from engine.data.ssim import PhotoComparer
    from engine.train.review.features import dataset_features

    dataset = scan_dataset(
        root,
        validation_percentage=validation_percentage,
        testing_percentage=testing_percentage,
        progress=progress,
    )
    dataset.require_trainable()
    stamp = {
        "fingerprint": dataset.fingerprint,
        "split": [validation_percentage, testing_percentage],
        "architecture": architecture or DEFAULT_BACKBONE,
        "radius": radius,
        "min_ssim": min_ssim,
    }
    kept = edits.kept(dataset.root, studio_home=studio_home)
    if reuse and (found := store.load(dataset.root, stamp, studio_home=studio_home)) is not None:
        found.seconds = {}
        return _hide(found, kept)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    result = dataset_features(
        dataset.images, architecture=architecture, bottleneck_dir=bottleneck_dir, progress=progress
    )
    seconds["features"] = time.perf_counter() - start
    records = [dataset.images[k] for k in result.kept]
    start = time.perf_counter()
    hashes = photo_hashes(dataset.root, records, progress=progress)
    seconds["hashes"] = time.perf_counter() - start
    review = review_features(
        [r.rel_path for r in records],
        [r.label for r in records],
        [r.split for r in records],
        result.features,
        signs=bit_matrix([h.bits if h else None for h in hashes]),
        similarity=PhotoComparer([r.path for r in records]),
        radius=radius,
        min_ssim=min_ssim,
    )
    review.seconds = {**seconds, **review.seconds}
    review.folders = {r.label: r.folder for r in dataset.images}
    review.skipped = list(result.skipped)
    store.save(dataset.root, review, stamp, studio_home=studio_home)
    return _hide(review, kept)


def _hide(review: Review, kept: set[str]) -> Review:
    return dataclasses.replace(review, findings=[f for f in review.findings if f.path not in kept])
