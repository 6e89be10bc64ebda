"""A dataset's review: its label issues, near-duplicates, split leaks and outliers, as rows.

`review_features` reviews photos whose features (and, when given, perceptual
hashes and a way to compare two photos) are in hand;
`engine.train.review.dataset.review_dataset` scans a folder and gathers them. Each `Finding` is one photo:
`kind`, its `path` relative to the dataset root, a `score` (higher = more
suspicious, 0 to 1 for label issues and near-duplicates), the folder label,
the label the out-of-fold head suggests, the near-duplicate `group`, its
split, and its nearest neighbours (the evidence the Review tab shows).
Photos the user marked *keep* (`engine.data.edits.kept`) are left out.

Split leaks are fixed by `fix_leaks`: each leaking group's photos are renamed
(a journaled, undoable edit) to share the split key of the group's first
photo by path, `<first photo's name>_nohash_dup<N>.<ext>`. retrain.py's
`_nohash_` rule (`engine.data.splits.split_key`) then keeps the group in
that photo's split in every scan and training, so the rule is recorded in
the file names themselves and nowhere else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.fsutil import atomic_write_csv
from engine.data import edits
from engine.data.splits import same_split_name, split_key
from engine.train.review import findings as fnd
from engine.train.review import near_duplicates as nd

KINDS = ("label_issue", "near_duplicate", "split_leak", "outlier")
CSV_COLUMNS = (
    "kind", "path", "score", "given_label", "suggested_label", "group", "split", "neighbours", "evidence"
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One suspicious photo (see the module docstring for the fields)."""

    kind: str
    path: str
    score: float
    given_label: str
    suggested_label: str
    group: int | None = None
    split: str = ""
    neighbours: tuple[str, ...] = ()
    evidence: str = ""

    def row(self) -> dict[str, Any]:
        """The CSV row."""
        return {
            "kind": self.kind,
            "path": self.path,
            "score": f"{self.score:.4f}",
            "given_label": self.given_label,
            "suggested_label": self.suggested_label,
            "group": "" if self.group is None else self.group,
            "split": self.split,
            "neighbours": ";".join(self.neighbours),
            "evidence": self.evidence,
        }


@dataclass
class Review:
    """What `review_dataset` found.

    Attributes:
        findings: sorted by kind (in `KINDS` order), then most suspicious first.
        image_count: photos reviewed.
        folders: the class folder of each label.
        leak: the split-leak figures: `leaked_test_photos`, `test_photos`,
            `test_accuracy` and `test_accuracy_without_leaks` (a head fitted on
            the train split; None when no test photo leaked or a split is empty).
        seconds: time per part ("features", "label_issues", "near_duplicates", "outliers").
        skipped: `(path, reason)` of photos that could not be read.
    """

    findings: list[Finding]
    image_count: int
    folders: dict[str, str] = field(default_factory=dict)
    leak: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Finding]:
        """The findings of one kind, most suspicious first."""
        return [f for f in self.findings if f.kind == kind]

    def counts(self) -> dict[str, int]:
        """How many findings of each kind."""
        return {kind: len(self.of_kind(kind)) for kind in KINDS}


def review_features(
    paths: Sequence[str],
    labels: Sequence[str],
    splits: Sequence[str],
    features: np.ndarray,
    *,
    signs: np.ndarray | None = None,
    similarity: Callable[[int, int], float] | None = None,
    radius: float = nd.FEATURE_RADIUS,
    min_ssim: float = nd.CONFIRM_SSIM,
    folds: int = fnd.FOLDS,
    hide: set[str] | frozenset[str] = frozenset(),
) -> Review:
    """Review photos whose features are known.

    Args:
        paths: each photo's path relative to the dataset root.
        labels: each photo's folder label.
        splits: each photo's split ("train", "validation", "test").
        features: `(N, F)` features, in the same order.
        signs: their perceptual hashes as +1/-1 rows (`engine.data.phash.bit_matrix`).
            Defaults to None (near-duplicates from the features alone).
        similarity: `(i, j) -> SSIM` of two photos, which confirms each candidate pair
            (`engine.data.ssim.PhotoComparer`). Defaults to None (not confirmed).
        radius: the feature channel's radius (`near_duplicates.FEATURE_RADIUS`).
        min_ssim: the SSIM a candidate pair needs (`near_duplicates.CONFIRM_SSIM`).
        folds: the out-of-fold folds. Defaults to 5.
        hide: paths not to report (kept by the user). Defaults to none.

    Returns:
        The `Review` (its `folders` are left empty).
    """
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels], np.int64)
    x = np.asarray(features, np.float32)
    split = np.asarray(splits)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    probs = fnd.out_of_fold_probabilities(x, y, len(names), folds=folds)
    issues = fnd.label_issues(y, probs)
    seconds["label_issues"] = time.perf_counter() - start

    start = time.perf_counter()
    unit = fnd.normalised(x)
    pairs = nd.find_pairs(unit, signs=signs, similarity=similarity, radius=radius, min_ssim=min_ssim)
    groups = nd.groups_of(len(x), pairs.i, pairs.j)
    best = np.zeros(len(x), np.float64)
    evidence = [""] * len(x)
    for order in np.argsort(pairs.score, kind="stable"):  # the best pair's evidence wins
        for row in (int(pairs.i[order]), int(pairs.j[order])):
            best[row] = pairs.score[order]
            evidence[row] = _evidence(pairs, int(order), similarity is not None)
    seconds["near_duplicates"] = time.perf_counter() - start

    start = time.perf_counter()
    ratio, outlier = fnd.outlier_scores(unit, y, probs)
    far = np.flatnonzero(ratio >= fnd.OUTLIER_RATIO)
    far = far[np.argsort(-outlier[far], kind="stable")][
        : fnd.OUTLIER_MIN + int(fnd.OUTLIER_SHARE * len(x))
    ]
    seconds["outliers"] = time.perf_counter() - start

    shown = np.unique(np.concatenate([issues.ranked, far])).astype(np.int64)
    neighbours = dict(zip(shown.tolist(), fnd.nearest_neighbours(unit, shown).tolist(), strict=True))

    def finding(
        kind: str,
        row: int,
        score: float,
        group: int | None = None,
        near: Sequence[int] = (),
        why: str = "",
    ) -> Finding:
        near = neighbours.get(row, near)
        return Finding(
            kind,
            paths[row],
            float(score),
            labels[row],
            names[int(issues.suggested[row])],
            group,
            str(split[row]),
            tuple(paths[n] for n in near),
            why,
        )

    rows = [finding("label_issue", int(r), 1.0 - issues.quality[r]) for r in issues.ranked]
    leaked_test = np.zeros(len(x), bool)
    for number, members in enumerate(groups, start=1):
        spans = len(set(split[members])) > 1
        if spans and (split[members] == "train").any():
            leaked_test[members[split[members] == "test"]] = True
        for row in members:
            others = [int(m) for m in members if m != row]
            kind = "split_leak" if spans else "near_duplicate"
            rows.append(finding(kind, int(row), best[row], number, others, evidence[int(row)]))
    rows += [finding("outlier", int(r), outlier[r]) for r in far]
    order = {kind: n for n, kind in enumerate(KINDS)}
    rows = [r for r in rows if r.path not in hide]
    rows.sort(key=lambda f: (order[f.kind], -f.score, f.group or 0, f.path))

    train, test = split == "train", split == "test"
    with_leaks, without = (None, None)
    if leaked_test.any():  # one more fit, only when there is a leak to measure
        with_leaks, without = fnd.leak_accuracy(x, y, len(names), train, test, leaked_test)
    leak = {
        "leaked_test_photos": int(leaked_test.sum()),
        "test_photos": int(test.sum()),
        "test_accuracy": with_leaks,
        "test_accuracy_without_leaks": without,
    }
    return Review(rows, len(x), leak=leak, seconds=seconds)


def _evidence(pairs: nd.NearDuplicatePairs, k: int, confirmed: bool) -> str:
    """What joined a pair, in words ("hash 4 of 256 bits, features 0.3 x, SSIM 0.97")."""
    parts = []
    if pairs.bits[k] >= 0:
        parts.append(f"hash {pairs.bits[k]} of 256 bits")
    if not np.isnan(pairs.distance[k]):
        parts.append(f"features {pairs.distance[k]:.2f} x the median neighbour distance")
    parts.append(f"SSIM {pairs.score[k]:.3f}" if confirmed else f"cosine {pairs.score[k]:.3f}")
    return ", ".join(parts)


def write_csv(review: Review, path: str | os.PathLike[str]) -> Path:
    """Write the findings as CSV (`CSV_COLUMNS`), atomically; return the path."""
    return atomic_write_csv(path, CSV_COLUMNS, (item.row() for item in review.findings))


def leak_renames(review: Review) -> list[tuple[str, str]]:
    """The renames that keep each leaking group in its first photo's split: `(path, new name)`."""
    renames = []
    groups: dict[int, list[str]] = {}
    for item in review.of_kind("split_leak"):
        groups.setdefault(int(item.group or 0), []).append(item.path)
    for members in groups.values():
        first, *rest = sorted(members)
        key = split_key(Path(first).name)
        for n, member in enumerate(rest, start=1):
            if split_key(Path(member).name) != key:
                renames.append((member, same_split_name(key, f"dup{n}", Path(member).suffix)))
    return renames


def fix_leaks(
    root: str | os.PathLike[str], review: Review, *, studio_home: str | os.PathLike[str] | None = None
) -> edits.Edit | None:
    """Rename each leaking group's photos so the group stays in one split (undoable); None if no leak."""
    renames = leak_renames(review)
    if not renames:
        return None
    return edits.rename(root, renames, studio_home=studio_home)
