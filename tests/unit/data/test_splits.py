"""engine.data.splits: labels from folder names and retrain.py's stable, hash-based split."""

from __future__ import annotations

import hashlib
import random

import pytest

from engine.core.errors import StudioError
from engine.data.splits import MAX_NUM_IMAGES_PER_CLASS, assign_splits, normalize_label, split_bucket

# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("folder", "label"),
    [
        ("daisy", "daisy"),
        ("Red_Roses", "red roses"),
        ("  sun--flowers!! ", "sun flowers"),
        ("Tulips2024", "tulips2024"),
        ("café", "café"),
        ("Rosen_Rot", "rosen rot"),
        ("玫瑰", "玫瑰"),
        ("ÉTÉ 2024", "été 2024"),
        ("___", ""),
    ],
)
def test_label_is_the_folder_name_normalised_like_retrain_py_in_any_script(
    folder: str, label: str
) -> None:
    assert normalize_label(folder) == label


# ---------------------------------------------------------------- split


def test_split_bucket_follows_retrain_py_formula() -> None:
    name = "100080576_f52e8ee070_n.jpg"
    digest = int(hashlib.sha1(name.encode()).hexdigest(), 16)
    expected = (digest % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)
    assert split_bucket(name) == expected
    assert split_bucket(f"some/folder/{name}") == expected


def test_nohash_suffix_keeps_photos_of_one_subject_in_one_bucket() -> None:
    names = [f"leaf7_nohash_{i}.jpg" for i in range(20)] + [f"other{i}.jpg" for i in range(200)]
    splits = assign_splits(names)
    assert len({splits[f"leaf7_nohash_{i}.jpg"] for i in range(20)}) == 1


def test_split_shares_are_close_to_the_percentages() -> None:
    names = [f"img_{i:05d}.jpg" for i in range(5000)]
    counts = {s: 0 for s in ("train", "validation", "test")}
    for split in assign_splits(names, validation_percentage=10, testing_percentage=20).values():
        counts[split] += 1
    assert 400 <= counts["validation"] <= 600
    assert 850 <= counts["test"] <= 1150


def test_adding_photos_never_moves_old_ones() -> None:
    old = [f"photo_{i}.jpg" for i in range(100)]
    new = old + [f"later_{i}.jpg" for i in range(300)]
    before = assign_splits(old)
    after = assign_splits(new)
    assert {n: after[n] for n in old} == before


@pytest.mark.parametrize("count", [3, 4, 5, 7, 10])
@pytest.mark.parametrize(("val", "test"), [(10, 10), (5, 5), (30, 30), (1, 1)])
def test_every_class_of_three_or_more_gets_train_validation_and_test(
    count: int, val: int, test: int
) -> None:
    for offset in range(0, 200, 20):  # many different name sets
        names = [f"c{offset + i}.jpg" for i in range(count)]
        splits = assign_splits(names, validation_percentage=val, testing_percentage=test)
        assert set(splits.values()) == {"train", "validation", "test"}, names


def test_split_guarantee_is_deterministic_and_order_independent() -> None:
    names = [f"x{i}.png" for i in range(4)]
    shuffled = names[:]
    random.Random(3).shuffle(shuffled)
    assert assign_splits(names) == assign_splits(shuffled) == assign_splits(names)


def test_zero_percentage_leaves_that_set_empty() -> None:
    splits = assign_splits([f"a{i}.jpg" for i in range(50)], validation_percentage=0)
    assert "validation" not in splits.values()


@pytest.mark.parametrize(("val", "test"), [(-1, 10), (10, 100), (60, 40), ("ten", 10)])
def test_bad_percentages_are_refused(val: object, test: object) -> None:
    with pytest.raises(StudioError, match="percentage"):
        assign_splits(["a.jpg"], validation_percentage=val, testing_percentage=test)  # type: ignore[arg-type]
