"""What is wrong with the photos, from their features alone (numpy, scipy, cleanlab; no images).

- **Label issues**: out-of-fold probabilities from the softmax head
  (`engine.train.softmax.fit_softmax`, k folds stratified by class), ranked by
  cleanlab (`find_label_issues`, self-confidence; `get_label_quality_scores`).
- **Near-duplicates** are `engine.train.review.near_duplicates`' (perceptual
  hashes and features, each pair confirmed by SSIM); a group spanning splits
  is a **split leak**.
- **Outliers**: photos far from every class mean (cosine distance, in units of
  the median distance of a photo to its own class mean) that the head is also
  unsure of (low out-of-fold confidence).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np

from engine.train.softmax import DEFAULT_L2, fit_softmax

FOLDS = 5
# A photo is an outlier candidate when its distance to the nearest class mean is this many
# times the median distance of a photo to its own class mean.
OUTLIER_RATIO = 1.6
# At most this share of the photos (plus OUTLIER_MIN) is reported as outliers, the farthest first.
OUTLIER_SHARE = 0.01
OUTLIER_MIN = 5
# Iterations of each fold's fit: probabilities need far fewer than a converged model (on the
# digits, 100, 200 and 400 flagged the same photos).
FOLD_ITERATIONS = 200


@dataclass(frozen=True)
class LabelIssues:
    """cleanlab's verdict on the out-of-fold probabilities.

    Attributes:
        ranked: indices of the flagged photos, most suspicious first.
        quality: per photo, cleanlab's label quality (0 = surely wrong, 1 = surely right).
        suggested: per photo, the class the out-of-fold head prefers.
    """

    ranked: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, class_count: int, *, folds: int = FOLDS, seed: int = 0
) -> np.ndarray:
    """Each photo's class probabilities from a head that never saw it (k-fold).

    Args:
        features: `(N, F)` float32.
        labels: `(N,)` class indices.
        class_count: the number of classes.
        folds: how many folds. Defaults to 5 (fewer when a class has fewer photos).
        seed: shuffles the folds. Defaults to 0.

    Returns:
        `(N, class_count)` probabilities.
    """
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    probabilities = np.full((n, class_count), 1.0 / class_count, np.float32)
    counts = np.bincount(labels, minlength=class_count)
    k = int(min(folds, max(2, counts[counts > 0].min(initial=n))))
    if n < 4:
        return probabilities
    # Stratified: each class's photos dealt round-robin over the folds in a shuffled order.
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, np.int64)
    for c in range(class_count):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold_of[members] = (np.arange(len(members)) + rng.integers(k)) % k
    for fold in range(k):
        held = fold_of == fold
        if held.all() or not held.any():
            continue
        head = fit_softmax(
            features[~held], labels[~held], class_count, l2=DEFAULT_L2, max_iterations=FOLD_ITERATIONS
        )
        probabilities[held] = head.probabilities(features[held])
    return probabilities


def label_issues(labels: np.ndarray, probabilities: np.ndarray) -> LabelIssues:
    """Rank the photos whose folder label the out-of-fold head disagrees with, via cleanlab.

    Args:
        labels: `(N,)` class indices (the folders).
        probabilities: `(N, C)` out-of-fold probabilities.

    Returns:
        The `LabelIssues`.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, np.int64)
    suggested = probabilities.argmax(axis=1)
    present = np.unique(labels)
    if len(present) < 2:
        return LabelIssues(np.zeros(0, np.int64), np.ones(len(labels)), suggested)
    # cleanlab wants every class column to have photos: score within the classes present.
    remap = np.full(probabilities.shape[1], -1)
    remap[present] = np.arange(len(present))
    probs = probabilities[:, present].astype(np.float64)
    probs /= probs.sum(axis=1, keepdims=True)
    local = remap[labels]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        quality = get_label_quality_scores(local, probs, method="self_confidence")
        # n_jobs=1: cleanlab's default forks a multiprocessing pool, and a fork of the
        # dashboard's many-threaded server (TensorFlow, BLAS, Streamlit) can deadlock:
        # the Review section once hung for good after reading the features.
        ranked = find_label_issues(local, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    return LabelIssues(np.asarray(ranked, np.int64), np.asarray(quality, np.float64), suggested)


def normalised(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); an all-zero row stays zero."""
    x = np.asarray(features, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def outlier_scores(
    unit: np.ndarray, labels: np.ndarray, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """How far each photo is from every class, and how suspicious that makes it.

    Args:
        unit: `(N, F)` unit-length features.
        labels: `(N,)` class indices.
        probabilities: `(N, C)` out-of-fold probabilities.

    Returns:
        `(ratio, score)`: the distance to the nearest class mean over the median
        distance to one's own class mean; and `ratio * (1 - confidence / 2)`.
    """
    labels = np.asarray(labels, np.int64)
    present = np.unique(labels)
    means = normalised(np.stack([unit[labels == c].mean(axis=0) for c in present]))
    distance = 1.0 - unit @ means.T  # (N, classes present)
    own = distance[np.arange(len(labels)), np.searchsorted(present, labels)]
    scale = max(float(np.median(own)), 1e-6)
    ratio = distance.min(axis=1) / scale
    confidence = probabilities.max(axis=1)
    return ratio, ratio * (1.0 - confidence / 2.0)


def nearest_neighbours(unit: np.ndarray, rows: np.ndarray, k: int = 3) -> np.ndarray:
    """For each of `rows`, the `k` most similar other photos (indices, most similar first)."""
    if len(rows) == 0 or len(unit) < 2:
        return np.zeros((len(rows), 0), np.int64)
    k = min(k, len(unit) - 1)
    sims = unit[rows] @ unit.T
    sims[np.arange(len(rows)), rows] = -np.inf
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def leak_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    class_count: int,
    train: np.ndarray,
    test: np.ndarray,
    leaked: np.ndarray,
) -> tuple[float | None, float | None]:
    """Test accuracy of a head fitted on the train rows, with and without the leaked test rows.

    Returns:
        `(accuracy on every test row, accuracy on the test rows not leaked)`; None where
        there is nothing to fit or score.
    """
    if not train.any() or not test.any():
        return None, None
    head = fit_softmax(
        features[train], labels[train], class_count, l2=DEFAULT_L2, max_iterations=FOLD_ITERATIONS
    )
    right = head.probabilities(features).argmax(axis=1) == labels
    clean = test & ~leaked
    return float(right[test].mean()), (float(right[clean].mean()) if clean.any() else None)
