"""The data review: label issues, near-duplicates and split leaks, outliers, the CSV, the leak fix."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data import edits, library
from engine.data.scan import scan_dataset
from engine.data.splits import split_key
from engine.train.review import CSV_COLUMNS, KINDS, fix_leaks, leak_renames, review_features, write_csv
from engine.train.review import findings as fnd
from tests.support.features import blobs


def _flip(
    labels: np.ndarray, fraction: float, classes: int, seed: int = 0
) -> tuple[np.ndarray, set[int]]:
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), max(1, int(fraction * len(labels))), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, classes, len(flipped))) % classes
    return noisy, {int(i) for i in flipped}


def _precision_at_k(review, flipped: set[int]) -> float:
    top = [int(Path(f.path).stem) for f in review.of_kind("label_issue")[: len(flipped)]]
    return len(set(top) & flipped) / len(flipped)


def _clusters(
    n: int, classes: int, *, spread: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features around one random centre per class in 64 dimensions (distinct photos are far from cosine 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return (rng.normal(0, 1, (classes, 64))[y] + rng.normal(0, spread, (n, 64))).astype(np.float32), y


def _review(x: np.ndarray, y: np.ndarray, splits=None, **kwargs):
    paths = [f"c{v}/{i}.jpg" for i, v in enumerate(y)]
    return review_features(paths, [f"c{v}" for v in y], splits or ["train"] * len(y), x, **kwargs)


def test_flipped_labels_lead_the_label_issue_list_on_real_digits() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()  # real scans; their 64 pixels stand in for a backbone's features here
    noisy, flipped = _flip(digits.target, 0.05, 10)
    review = _review(digits.data.astype(np.float32), noisy)
    assert _precision_at_k(review, flipped) >= 0.8
    first = review.of_kind("label_issue")[0]
    row = int(Path(first.path).stem)
    assert first.given_label == f"c{noisy[row]}" and first.suggested_label != first.given_label


def test_label_issues_on_separable_features_name_the_true_class() -> None:
    x, y = blobs(400, dims=16, classes=4, spread=0.3, seed=3)
    noisy, flipped = _flip(y, 0.05, 4)
    review = _review(x, noisy)
    assert _precision_at_k(review, flipped) >= 0.9
    for finding in review.of_kind("label_issue")[: len(flipped)]:
        assert finding.suggested_label == f"c{y[int(Path(finding.path).stem)]}"


def test_label_issues_never_fork_a_process_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    # The dashboard runs the review inside its many-threaded server, where a fork can deadlock.
    import multiprocessing

    def no_pool(*args, **kwargs):
        raise AssertionError("the review forked a multiprocessing pool")

    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    _, y = blobs(400, dims=16, classes=4, spread=0.3, seed=3)
    noisy, flipped = _flip(y, 0.05, 4)
    issues = fnd.label_issues(noisy, np.eye(4)[y] * 0.9 + 0.025)
    assert set(flipped) <= set(issues.ranked.tolist())


def test_a_copy_across_splits_is_a_leak_and_its_effect_on_test_accuracy_is_measured() -> None:
    x, y = _clusters(300, 3, seed=5)
    splits = ["train"] * 240 + ["test"] * 60
    x[10] = x[250] * 1.001  # a train photo that is a copy of test photo 250
    x[20] = x[30] * 0.999  # two near-copies inside train: a near-duplicate, no leak
    review = _review(x, y, splits)
    leak = review.of_kind("split_leak")
    assert {f.path for f in leak} == {f"c{y[10]}/10.jpg", f"c{y[250]}/250.jpg"}
    assert len({f.group for f in leak}) == 1 and leak[0].score > 0.99
    assert {f.path for f in review.of_kind("near_duplicate")} == {f"c{y[20]}/20.jpg", f"c{y[30]}/30.jpg"}
    assert review.leak["leaked_test_photos"] == 1 and review.leak["test_photos"] == 60
    assert (
        review.leak["test_accuracy"] is not None
        and review.leak["test_accuracy_without_leaks"] is not None
    )
    (_, new_name), *_ = leak_renames(review)
    assert split_key(new_name) == split_key(Path(min(f.path for f in leak)).name)


def test_a_picture_far_from_every_class_is_the_top_outlier() -> None:
    x, y = blobs(300, dims=16, classes=3, spread=0.5, seed=7)
    x = np.abs(x)
    x[42] = -x[42] * 3  # points away from every class
    review = _review(x, y)
    assert review.of_kind("outlier")[0].path.endswith("/42.jpg")


def test_rows_are_sorted_by_kind_then_suspicion_and_kept_photos_are_hidden(tmp_path: Path) -> None:
    x, y = _clusters(200, 2, seed=1)
    x[5] = x[150] * 1.0001
    review = _review(x, y, ["train"] * 100 + ["test"] * 100)
    order = [KINDS.index(f.kind) for f in review.findings]
    assert order == sorted(order)
    for kind in KINDS:
        scores = [f.score for f in review.of_kind(kind)]
        assert scores == sorted(scores, reverse=True)
    hidden = review.findings[0].path
    assert hidden not in {f.path for f in _review(x, y, hide={hidden}).findings}
    out = write_csv(review, tmp_path / "review.csv")
    rows = list(csv.DictReader(out.open()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(review.findings)
    assert {r["kind"] for r in rows} <= set(KINDS)


def test_fixing_a_leak_keeps_the_group_in_one_split_and_is_undoable(
    tmp_path: Path, studio_home: Path
) -> None:
    from tests.support.factories import write_class_folders
    from tests.support.review_data import train_name

    root = write_class_folders(tmp_path / "data", {"a": 12, "b": 12})
    library.write_manifest(root, "import")
    test_photo = next(r for r in scan_dataset(root).images if r.split == "test")
    copy = test_photo.path.parent / train_name("copy-", ".jpg")
    copy.write_bytes(test_photo.path.read_bytes() + b"\0")  # not byte-identical
    records = {r.rel_path: r for r in scan_dataset(root).images}
    rel_copy = copy.relative_to(root).as_posix()
    assert records[rel_copy].split == "train"
    paths = list(records)
    x = np.random.default_rng(0).normal(size=(len(paths), 8)).astype(np.float32)
    x[paths.index(rel_copy)] = x[paths.index(test_photo.rel_path)]
    review = review_features(
        paths, [r.label for r in records.values()], [r.split for r in records.values()], x
    )
    assert {f.path for f in review.of_kind("split_leak")} == {rel_copy, test_photo.rel_path}
    edit = fix_leaks(root, review)
    after = {r.rel_path: r.split for r in scan_dataset(root).images}
    renamed = Path(edit.moves[0][1]).relative_to(root).as_posix()
    assert after[renamed] == after[test_photo.rel_path]
    edits.undo(root)
    assert copy.exists()


@pytest.mark.slow
def test_the_cli_reviews_a_real_dataset_and_writes_the_csv(tmp_path: Path, studio_home: Path) -> None:
    import shutil

    from engine.data.demo import ensure_demo_dataset
    from tests.support.review_data import draw_chart, flip_labels, leak_copy

    root = tmp_path / "flowers"
    shutil.copytree(ensure_demo_dataset(tmp_path / "datasets"), root)
    flipped = flip_labels(root, 0.05, seed=2)
    test_photo = next(r for r in scan_dataset(root).images if r.split == "test")
    copy = leak_copy(test_photo.path).relative_to(root).as_posix()
    draw_chart(root / "roses" / "chart.png")
    out = tmp_path / "review.csv"
    done = subprocess.run(
        [sys.executable, "-m", "engine", "review", "--image_dir", str(root), "--output_csv", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Reviewed 302 photos" in done.stdout and "bottlenecks" in done.stderr  # the progress bar
    rows = list(csv.DictReader(out.open()))
    by_kind = {kind: [r["path"] for r in rows if r["kind"] == kind] for kind in KINDS}
    assert len(set(by_kind["label_issue"][: len(flipped)]) & flipped) >= 0.7 * len(flipped)
    assert copy in by_kind["split_leak"]
    assert "roses/chart.png" in by_kind["outlier"][:3]
