""" "Label these next": the unsorted photos ranked by how much labelling each would teach the model.

A softmax head (`engine.train.softmax.fit_softmax`) is fitted on every
labelled photo's cached features and gives each unsorted photo its class
probabilities; cleanlab's ActiveLab (`cleanlab.multiannotator.
get_active_learning_scores` with `pred_probs_unlabeled`) scores them. With
no second annotator the score is the mean of the head's confidence and
1 / classes, so the lowest score is the photo the model is least sure of:
labelling it moves the decision boundary most. Each suggestion carries the
class the head prefers, so a photo the model is sure of is one click.

`order_curve` measures what the order buys: from a few labelled photos per
class, it adds photos in batches, in ActiveLab order (re-ranked after each
batch, as the page re-ranks after each filing) or at random, and records
the test accuracy of a head fitted after each batch (bench/bench_label_next.py,
BENCHMARKS.md, and the Dataset page for the dataset at hand).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import StudioError
from engine.core.fsutil import atomic_write_csv
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.train.softmax import DEFAULT_L2, fit_softmax

CSV_COLUMNS = ("rank", "path", "score", "suggested_label", "suggested_folder", "confidence")
# Iterations of the ranking head: a ranking needs probabilities, not a converged model.
FIT_ITERATIONS = 200
METHOD = "ActiveLab (cleanlab.multiannotator.get_active_learning_scores, unlabelled photos)"


@dataclass(frozen=True)
class Suggestion:
    """One unsorted photo, where it stands in the order and what the model thinks it is.

    Attributes:
        rank: 1 = label this first.
        path: the photo, relative to the dataset root (or to the unsorted folder outside it).
        score: the ActiveLab score, 0 to 1 (lower = more to learn from it).
        suggested_label: the class the head prefers.
        suggested_folder: that class's folder.
        confidence: the head's probability for it.
    """

    rank: int
    path: str
    score: float
    suggested_label: str
    suggested_folder: str
    confidence: float

    def row(self) -> dict[str, Any]:
        """The CSV row."""
        return {
            "rank": self.rank,
            "path": self.path,
            "score": f"{self.score:.4f}",
            "suggested_label": self.suggested_label,
            "suggested_folder": self.suggested_folder,
            "confidence": f"{self.confidence:.4f}",
        }


@dataclass
class LabelNext:
    """What `label_next` found.

    Attributes:
        suggestions: best first.
        folder: the unsorted folder.
        inside: whether it is inside the dataset (its photos are moved when filed, else copied).
        labelled: labelled photos the head learnt from.
        labels: the classes, in the head's order.
        folders: each class's folder.
        skipped: `(path, reason)` of unsorted files that could not be used.
        already_filed: unsorted photos left out because their bytes are in a class already.
        method: how the order was made.
    """

    suggestions: list[Suggestion]
    folder: Path
    inside: bool
    labelled: int
    labels: list[str]
    folders: dict[str, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    already_filed: int = 0
    method: str = METHOD


def activelab_scores(probabilities: np.ndarray) -> np.ndarray:
    """cleanlab's ActiveLab score of each unlabelled photo (lower = label it sooner).

    Args:
        probabilities: `(N, C)` class probabilities of the unlabelled photos, C >= 2.

    Returns:
        `(N,)` scores in (0, 1].
    """
    from cleanlab.multiannotator import get_active_learning_scores

    if len(probabilities) == 0:
        return np.zeros(0)
    probs = np.clip(np.asarray(probabilities, np.float64), 1e-12, None)
    probs /= probs.sum(axis=1, keepdims=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        _, scores = get_active_learning_scores(pred_probs_unlabeled=probs)
    return np.asarray(scores, np.float64)


def rank(
    labelled: np.ndarray, labels: np.ndarray, unlabelled: np.ndarray, class_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fit a head on the labelled features and score the unlabelled ones.

    Args:
        labelled: `(N, F)` features of labelled photos.
        labels: `(N,)` their class indices.
        unlabelled: `(M, F)` features of the photos to rank.
        class_count: the number of classes.

    Returns:
        `(order, probabilities)`: indices into `unlabelled`, label-first first (stable on
        ties), and `(M, class_count)` probabilities.
    """
    head = fit_softmax(labelled, labels, class_count, l2=DEFAULT_L2, max_iterations=FIT_ITERATIONS)
    probabilities = head.probabilities(unlabelled)
    return np.argsort(activelab_scores(probabilities), kind="stable"), probabilities


def label_next(
    root: str | os.PathLike[str],
    *,
    unsorted_dir: str | os.PathLike[str] | None = None,
    architecture: str | None = None,
    bottleneck_dir: str | None = None,
    progress: ProgressCallback | None = None,
) -> LabelNext:
    """Rank a dataset's unsorted photos: which to label first, and as what.

    Args:
        root: the dataset folder (class sub-folders, and `unsorted/` unless `unsorted_dir`).
        unsorted_dir: another folder of unsorted photos. Defaults to `<root>/unsorted`.
        architecture: the backbone whose features are used. Defaults to the studio's default.
        bottleneck_dir: the feature cache folder. Defaults to the studio's.
        progress: called with scan and feature progress. Defaults to None.

    Returns:
        The `LabelNext` (no suggestions when there is nothing unsorted).

    Raises:
        StudioError: the dataset cannot be trained on (two classes with photos are needed),
            or `unsorted_dir` is not a folder of unsorted photos.
    """
    from engine.data.scan import scan_dataset
    from engine.data.unsorted import scan_unsorted
    from engine.train.review.features import dataset_features

    dataset = scan_dataset(root, progress=progress)
    if len(dataset.labels) < 2:
        raise StudioError(
            f"label-next needs at least 2 classes with photos in {dataset.root.name} to learn from; "
            "sort a few photos of each kind into class folders first"
        )
    found = scan_unsorted(
        dataset.root, unsorted_dir, filed={r.sha256 for r in dataset.images}, progress=progress
    )
    folders = {c.label: c.folder for c in dataset.classes}
    result = LabelNext(
        [],
        found.folder,
        found.folder.is_relative_to(dataset.root),
        len(dataset.images),
        list(dataset.labels),
        folders,
        [(p.rel_path, p.reason) for p in found.problems],
        found.already_filed,
    )
    if not found.images:
        return result
    features = dataset_features(
        dataset.images + found.images,
        architecture=architecture,
        bottleneck_dir=bottleneck_dir,
        progress=progress,
    )
    n = len(dataset.images)
    rows = np.asarray(features.kept)
    labelled = rows < n
    y = np.array([dataset.labels.index(dataset.images[k].label) for k in rows[labelled]], np.int64)
    unsorted_rows = rows[~labelled] - n
    order, probs = rank(
        features.features[labelled], y, features.features[~labelled], len(dataset.labels)
    )
    scores = activelab_scores(probs)
    for place, k in enumerate(order, start=1):
        record = found.images[int(unsorted_rows[k])]
        best = int(probs[k].argmax())
        label = dataset.labels[best]
        result.suggestions.append(
            Suggestion(
                place, record.rel_path, float(scores[k]), label, folders[label], float(probs[k, best])
            )
        )
    skipped_unsorted = {r.rel_path for r in found.images}
    result.skipped += [s for s in features.skipped if s[0] in skipped_unsorted]
    return result


def write_csv(result: LabelNext, path: str | os.PathLike[str]) -> Path:
    """Write the suggestions as CSV (`CSV_COLUMNS`), best first, atomically; return the path."""
    return atomic_write_csv(path, CSV_COLUMNS, (item.row() for item in result.suggestions))


def order_curve(
    features: np.ndarray,
    labels: np.ndarray,
    test: np.ndarray,
    *,
    start_per_class: int = 2,
    batch: int = 10,
    rounds: int = 15,
    seeds: int = 3,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """How fast test accuracy rises with photos labelled in ActiveLab order against random order.

    The photos not in `test` are the pool: `start_per_class` of each class start labelled
    (the same for both orders), then `batch` more are labelled per round, chosen by
    ActiveLab on a head fitted to what is labelled so far, or at random.

    Args:
        features: `(N, F)` features of labelled photos.
        labels: `(N,)` class indices.
        test: `(N,)` bool, the photos that only score.
        start_per_class: photos of each class labelled at the start. Defaults to 2.
        batch: photos labelled per round. Defaults to 10.
        rounds: rounds. Defaults to 15.
        seeds: repeats with other starting photos and random orders (averaged). Defaults to 3.
        progress: called with `Progress("label-next curve", ...)` (fits done). Defaults to None.

    Returns:
        `{"labelled": [counts], "activelab": [mean accuracy], "random": [mean accuracy],
        "activelab_runs": [[...] per seed], "random_runs": [...], "test_photos": n}`.

    Raises:
        StudioError: fewer than 2 classes, or too few photos for the start and the test.
    """
    labels = np.asarray(labels, np.int64)
    test = np.asarray(test, bool)
    classes = int(labels.max()) + 1 if len(labels) else 0
    pool = np.flatnonzero(~test)
    counts = np.bincount(labels[pool], minlength=classes)
    if classes < 2 or int(counts.min()) <= start_per_class or not test.any():
        raise StudioError(
            "measuring the order needs 2 or more classes, each with more than "
            f"{start_per_class} photos outside the test split, and some test photos"
        )
    tracker = ProgressTracker("label-next curve", 2 * seeds * (rounds + 1), progress, unit="fits")
    runs: dict[str, list[list[float]]] = {"activelab": [], "random": []}
    sizes: list[int] = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        start = np.concatenate(
            [rng.choice(pool[labels[pool] == c], start_per_class, replace=False) for c in range(classes)]
        )
        for strategy in ("activelab", "random"):
            order_rng = np.random.default_rng(1000 + seed)
            chosen = list(start)
            curve = []
            sizes = []
            for _ in range(rounds + 1):
                head = fit_softmax(
                    features[chosen],
                    labels[chosen],
                    classes,
                    l2=DEFAULT_L2,
                    max_iterations=FIT_ITERATIONS,
                )
                curve.append(
                    float((head.probabilities(features[test]).argmax(1) == labels[test]).mean())
                )
                sizes.append(len(chosen))
                tracker.advance()
                left = np.setdiff1d(pool, chosen)
                if len(left) == 0:
                    break
                take = min(batch, len(left))
                if strategy == "activelab":
                    picked = left[
                        np.argsort(activelab_scores(head.probabilities(features[left])), kind="stable")[
                            :take
                        ]
                    ]
                else:
                    picked = order_rng.choice(left, take, replace=False)
                chosen += [int(p) for p in picked]
            runs[strategy].append(curve)
    tracker.finish()
    width = min(len(c) for r in runs.values() for c in r)
    return {
        "labelled": sizes[:width],
        "activelab": np.mean([c[:width] for c in runs["activelab"]], axis=0).round(4).tolist(),
        "random": np.mean([c[:width] for c in runs["random"]], axis=0).round(4).tolist(),
        "activelab_runs": runs["activelab"],
        "random_runs": runs["random"],
        "test_photos": int(test.sum()),
    }


def measure_on_dataset(
    root: str | os.PathLike[str],
    *,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
    architecture: str | None = None,
    bottleneck_dir: str | None = None,
    progress: ProgressCallback | None = None,
    batch: int = 10,
    rounds: int = 12,
    seeds: int = 3,
) -> dict[str, Any]:
    """`order_curve` on a dataset's own labelled photos (its test split scores, the rest is the pool).

    Args:
        root: the dataset folder.
        validation_percentage: as in `scan_dataset`. Defaults to 10.
        testing_percentage: as in `scan_dataset`. Defaults to 10.
        architecture: the backbone whose features are used. Defaults to the studio's default.
        bottleneck_dir: the feature cache folder. Defaults to the studio's.
        progress: called with scan, feature and fit progress. Defaults to None.
        batch: photos labelled per round. Defaults to 10.
        rounds: rounds at most (fewer when the pool runs out). Defaults to 12.
        seeds: repeats. Defaults to 3.

    Returns:
        As `order_curve`.

    Raises:
        StudioError: the dataset is too small to measure on (see `order_curve`).
    """
    from engine.data.scan import scan_dataset
    from engine.train.review.features import dataset_features

    dataset = scan_dataset(
        root,
        validation_percentage=validation_percentage,
        testing_percentage=testing_percentage,
        progress=progress,
    )
    dataset.require_trainable()
    features = dataset_features(
        dataset.images, architecture=architecture, bottleneck_dir=bottleneck_dir, progress=progress
    )
    records = [dataset.images[k] for k in features.kept]
    labels = np.array([dataset.labels.index(r.label) for r in records], np.int64)
    test = np.array([r.split == "test" for r in records])
    pool = int((~test).sum()) - 2 * len(dataset.labels)
    return order_curve(
        features.features, labels, test, batch=batch, rounds=max(1, min(rounds, pool // batch)),
        seeds=seeds, progress=progress,
    )  # fmt: skip
