"""engine.train.bottlenecks and engine.train.cache: batched extraction, the SQLite cache, damage, skips, progress.

The feature runtime here is a real fake: it computes features from the pixels
(per-channel means, repeated) so results are checkable, and counts its calls.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import StudioError
from engine.core.progress import Progress
from engine.data.dataset import ImageRecord
from engine.data.scan import scan_dataset
from engine.models.registry import get_backbone
from engine.train.bottlenecks import compute_bottlenecks, extract_bottlenecks
from engine.train.cache import BottleneckCache, feature_key
from tests.support.factories import write_class_folders

BACKBONE = get_backbone("mobilenet_v3_small")
SIZE = 96


class MeanColourRuntime:
    """Features = each image's per-channel mean, tiled to the backbone's feature size."""

    runtime = "fake"
    notice = None

    def __init__(self) -> None:
        self.backbone = BACKBONE
        self.input_size = SIZE
        self.batch_sizes: list[int] = []

    def features(self, batch: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(batch))
        means = batch.astype(np.float32).mean(axis=(1, 2))
        reps = -(-BACKBONE.feature_size // 3)
        return np.tile(means, (1, reps))[:, : BACKBONE.feature_size]


@pytest.fixture
def records(tmp_path: Path) -> list[ImageRecord]:
    root = write_class_folders(tmp_path / "data", {"a": 6, "b": 6})
    return list(scan_dataset(root, use_cache=False).images)


@pytest.fixture
def cache(tmp_path: Path) -> BottleneckCache:
    return BottleneckCache(tmp_path / "cache.sqlite", BACKBONE.feature_size)


def test_features_are_computed_in_batches_not_per_image(records) -> None:
    runtime = MeanColourRuntime()
    extract_bottlenecks(records, runtime, batch_size=5)
    assert runtime.batch_sizes == [5, 5, 2]


def test_features_match_the_prepared_image_row_for_row(records) -> None:
    features = compute_bottlenecks(records, MeanColourRuntime(), batch_size=4)
    expected = BACKBONE.load(records[7].path, SIZE).astype(np.float32).mean(axis=(0, 1))
    assert features.shape == (12, BACKBONE.feature_size)
    assert features[7, :3] == pytest.approx(expected, abs=1e-3)


def test_warm_cache_computes_nothing_and_gives_the_same_features(records, cache) -> None:
    cold = extract_bottlenecks(records, MeanColourRuntime(), cache=cache)
    runtime = MeanColourRuntime()
    warm = extract_bottlenecks(records, runtime, cache=cache)
    assert (cold.computed, warm.computed, warm.cached) == (12, 0, 12)
    assert runtime.batch_sizes == []
    assert np.array_equal(cold.features, warm.features)


def test_a_partly_warm_cache_puts_each_new_feature_in_its_own_row_and_key(records, cache) -> None:
    # Regression: the photos computed beside cached ones were written to the rows (and the
    # cache keys) of the first photos, so a review after adding photos read wrong features.
    reference = extract_bottlenecks(records, MeanColourRuntime()).features
    extract_bottlenecks(records[::2], MeanColourRuntime(), cache=cache)
    mixed = extract_bottlenecks(records, MeanColourRuntime(), cache=cache)
    assert (mixed.cached, mixed.computed) == (6, 6)
    assert np.array_equal(mixed.features, reference)
    again = extract_bottlenecks(records, MeanColourRuntime(), cache=cache)
    assert again.computed == 0 and np.array_equal(again.features, reference)


def test_cache_is_keyed_by_content_so_a_renamed_photo_stays_cached(records, cache) -> None:
    extract_bottlenecks(records[:1], MeanColourRuntime(), cache=cache)
    moved = records[0].path.rename(records[0].path.with_name("renamed.jpg"))
    renamed = dataclasses.replace(records[0], path=moved, rel_path="a/renamed.jpg")
    result = extract_bottlenecks([renamed], MeanColourRuntime(), cache=cache)
    assert (result.cached, result.computed) == (1, 0)


def test_damaged_entry_is_detected_and_recomputed(records, cache) -> None:
    extract_bottlenecks(records, MeanColourRuntime(), cache=cache)
    with sqlite3.connect(cache.path) as db:
        db.execute(
            "UPDATE features SET data = ? WHERE sha256 = ?",
            (b"\x00" * BACKBONE.feature_size * 4, records[3].sha256),
        )
    result = extract_bottlenecks(records, MeanColourRuntime(), cache=cache)
    assert (result.damaged, result.computed, result.cached) == (1, 1, 11)
    assert extract_bottlenecks(records, MeanColourRuntime(), cache=cache).damaged == 0


def test_undecodable_image_is_skipped_and_listed_while_others_go_on(records, tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    bad = dataclasses.replace(records[2], path=broken, rel_path="a/broken.jpg", sha256="0" * 64)
    result = extract_bottlenecks([*records[:2], bad, records[3]], MeanColourRuntime())
    assert result.kept == [0, 1, 3]
    assert [path for path, _ in result.skipped] == ["a/broken.jpg"]
    assert result.features.shape[0] == 3


def test_compute_bottlenecks_refuses_to_drop_rows_silently(records, tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    bad = dataclasses.replace(records[0], path=broken, rel_path="a/broken.jpg", sha256="1" * 64)
    with pytest.raises(StudioError, match="rescan the dataset"):
        compute_bottlenecks([bad, records[1]], MeanColourRuntime())


def test_progress_reports_counts_and_cached_versus_computed(records, cache) -> None:
    extract_bottlenecks(records[:4], MeanColourRuntime(), cache=cache)
    seen: list[Progress] = []
    extract_bottlenecks(records, MeanColourRuntime(), cache=cache, progress=seen.append, batch_size=4)
    last = seen[-1]
    assert (last.phase, last.done, last.total, last.unit) == ("bottlenecks", 12, 12, "images")
    assert (last.detail["cached"], last.detail["computed"]) == (4, 8)


def test_should_stop_cancels_between_batches(records) -> None:
    with pytest.raises(StudioError, match="cancelled"):
        extract_bottlenecks(records, MeanColourRuntime(), should_stop=lambda: True)


@pytest.mark.parametrize(
    ("change", "kwargs"),
    [("input size", {"input_size": 128}), ("weights", {"weights": "other"})],
)
def test_feature_key_changes_with_what_changes_the_features(change: str, kwargs: dict) -> None:
    base = feature_key(BACKBONE, SIZE)
    args = {"input_size": SIZE, **kwargs}
    size = args.pop("input_size")
    assert feature_key(BACKBONE, size, **args) != base, change


def test_cache_refuses_a_vector_of_the_wrong_length(cache) -> None:
    with pytest.raises(ValueError, match="expected 576"):
        cache.put_many([("abc", np.zeros(3, np.float32))])
    assert len(cache) == 0


def test_cache_for_runtime_puts_one_file_per_key_in_the_given_folder(tmp_path) -> None:
    cache = BottleneckCache.for_runtime(MeanColourRuntime(), tmp_path / "bn")
    assert cache.path.parent == tmp_path / "bn"
    assert cache.path.name == f"{feature_key(BACKBONE, SIZE)}.sqlite"


def test_split_bottlenecks_cuts_one_extraction_back_into_splits_and_reuses_the_cache(
    records, tmp_path: Path
) -> None:
    from engine.train.bottlenecks import split_bottlenecks

    broken = dataclasses.replace(records[1], path=tmp_path / "missing.jpg")
    splits = {
        "train": [records[0], broken, *records[2:6]],
        "validation": records[6:9],
        "test": records[9:],
    }
    runtime = MeanColourRuntime()
    features, kept, result = split_bottlenecks(
        splits, runtime, weights=None, bottleneck_dir=str(tmp_path / "bn"), seed=3
    )
    assert [len(kept[s]) for s in splits] == [5, 3, 3]
    assert broken not in kept["train"] and [str(broken.rel_path)] == [p for p, _ in result.skipped]
    for name in splits:
        expected = runtime.features(np.stack([BACKBONE.load(r.path, SIZE) for r in kept[name]]))
        np.testing.assert_allclose(features[name], expected, atol=1e-4)
    # a second extraction (another candidate, another sweep) finds every feature cached
    again = MeanColourRuntime()
    _, _, second = split_bottlenecks(
        splits, again, weights=None, bottleneck_dir=str(tmp_path / "bn"), seed=3
    )
    assert (second.cached, second.computed, again.batch_sizes) == (11, 0, [])
    # random weights of another seed are other features: nothing is shared with them
    _, _, other = split_bottlenecks(
        splits, MeanColourRuntime(), weights=None, bottleneck_dir=str(tmp_path / "bn"), seed=4
    )
    assert other.computed == 11
