"""engine.data.scan: the scan, its findings and its cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.progress import Progress
from engine.data.scan import scan_dataset
from tests.support.factories import image_bytes, make_image, png_with_claimed_size, write_class_folders

# ---------------------------------------------------------------- scanning


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _good(variant: int = 0, fmt: str = "JPEG") -> bytes:
    return image_bytes(make_image(0, variant), fmt)


def test_scan_counts_classes_labels_and_splits(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"Daisy": 6, "red_roses": 5})
    dataset = scan_dataset(tmp_path)
    assert dataset.labels == ["daisy", "red roses"]
    assert [(c.label, c.folder, c.count) for c in dataset.classes] == [
        ("daisy", "Daisy", 6),
        ("red roses", "red_roses", 5),
    ]
    for info in dataset.classes:
        assert info.train + info.validation + info.test == info.count
        assert min(info.train, info.validation, info.test) >= 1
    assert len(dataset.images) == 11
    assert dataset.trainable


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("empty.jpg", b"", "empty"),
        ("notes.jpg", b"this is not a photo", "not_image"),
        ("cut.jpg", _good()[:300], "truncated"),
        ("bomb.png", None, "bomb"),
        ("tiny.png", image_bytes(make_image(0, 0, (12, 12)), "PNG"), "too_small"),
    ],
)
def test_broken_files_are_skipped_and_listed_with_a_reason(
    tmp_path: Path, name: str, data: bytes | None, kind: str
) -> None:
    if data is None:
        data = png_with_claimed_size(50_000, 50_000)
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    _write(tmp_path / "a" / name, data)
    dataset = scan_dataset(tmp_path)
    assert [(p.rel_path, p.kind) for p in dataset.problems] == [(f"a/{name}", kind)]
    assert dataset.problems[0].reason
    assert dataset.classes[0].count == 3
    assert dataset.trainable


def test_hidden_system_and_top_level_files_are_ignored_quietly(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    _write(tmp_path / "LICENSE.txt", b"licence")
    _write(tmp_path / ".DS_Store", b"junk")
    _write(tmp_path / "a" / ".DS_Store", b"junk")
    _write(tmp_path / "a" / "Thumbs.db", b"junk")
    _write(tmp_path / "a" / "._a_000.jpg", b"resource fork")
    _write(tmp_path / "__MACOSX" / "a" / "x.jpg", b"junk")
    _write(tmp_path / ".git" / "HEAD", b"ref")
    dataset = scan_dataset(tmp_path)
    assert dataset.problems == []
    assert dataset.labels == ["a", "b"]
    assert len(dataset.images) == 6


def test_deeper_folders_belong_to_their_top_level_class(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    _write(tmp_path / "a" / "2019" / "summer" / "deep.jpg", _good(9))
    dataset = scan_dataset(tmp_path)
    deep = [r for r in dataset.images if r.rel_path == "a/2019/summer/deep.jpg"]
    assert [(r.label, r.folder) for r in deep] == [("a", "a")]


def test_any_format_name_or_extension_is_accepted(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    files = {
        "UPPER.JPG": "JPEG",
        "no_extension": "PNG",
        "wrong.gif": "WEBP",
        "scan.tif": "TIFF",
        "日本の花 🌸.bmp": "BMP",
        "anim.gif": "GIF",
    }
    for i, (name, fmt) in enumerate(files.items()):
        _write(tmp_path / "a" / name, image_bytes(make_image(0, 20 + i), fmt))
    dataset = scan_dataset(tmp_path)
    found = {r.rel_path.split("/")[-1]: r.format for r in dataset.images}
    assert {n: found.get(n) for n in files} == files
    assert dataset.problems == []
    assert dataset.stats["formats"]["JPEG"] == 7  # 6 written by the factory + UPPER.JPG


def test_symlink_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    outside = _write(tmp_path / "secret" / "photo.jpg", _good(5))
    os.symlink(outside, root / "a" / "link.jpg")
    os.symlink(tmp_path / "secret", root / "c")
    dataset = scan_dataset(root)
    assert {(p.rel_path, p.kind) for p in dataset.problems} == {
        ("a/link.jpg", "symlink"),
        ("c", "symlink"),
    }
    assert all("secret" not in str(r.path) for r in dataset.images)


def test_two_folders_with_one_label_is_an_error(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"Red Roses": 3, "red_roses": 3, "daisy": 3})
    dataset = scan_dataset(tmp_path)
    assert not dataset.trainable
    assert any("'Red Roses'" in e and "'red_roses'" in e for e in dataset.errors)


def test_a_single_class_cannot_be_trained_on(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"only": 5})
    dataset = scan_dataset(tmp_path)
    with pytest.raises(StudioError, match="at least 2 classes"):
        dataset.require_trainable()


def test_no_class_folders_cannot_be_trained_on(tmp_path: Path) -> None:
    _write(tmp_path / "loose.jpg", _good())
    dataset = scan_dataset(tmp_path)
    assert any("no class folders" in e for e in dataset.errors)


def test_class_with_fewer_than_three_images_is_an_error_before_training(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 5, "b": 2})
    dataset = scan_dataset(tmp_path)
    assert any("'b' has only 2 usable" in e for e in dataset.errors)


def test_empty_class_is_left_out_with_a_warning(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "broken" / "x.jpg", b"not an image")
    dataset = scan_dataset(tmp_path)
    assert dataset.labels == ["a", "b"]
    assert sum("no usable images" in w for w in dataset.warnings) == 2


def test_small_and_imbalanced_classes_are_warned_about(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"big": 21, "small": 5})
    dataset = scan_dataset(tmp_path)
    assert any("'small' has only 5 images" in w for w in dataset.warnings)
    assert not any("'big' has only" in w for w in dataset.warnings)
    assert any("imbalanced" in w for w in dataset.warnings)
    assert dataset.trainable


def test_duplicates_are_classified_by_where_the_copies_are(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 6, "b": 6})
    # Splits depend on names only, so copying bytes between two of a's files
    # in different splits makes a leak without moving anything.
    in_a = [r for r in scan_dataset(tmp_path).images if r.label == "a"]
    train = next(r for r in in_a if r.split == "train")
    held_out = next(r for r in in_a if r.split != "train")
    held_out.path.write_bytes(train.path.read_bytes())
    # Same base name, so same split: a plain copy inside the class.
    twin = image_bytes(make_image(1, 60))
    _write(tmp_path / "b" / "x" / "dup.jpg", twin)
    _write(tmp_path / "b" / "y" / "dup.jpg", twin)
    first_a = (tmp_path / "a" / "a_000.jpg").read_bytes()
    if train.rel_path == "a/a_000.jpg" or held_out.rel_path == "a/a_000.jpg":
        first_a = (tmp_path / "a" / "a_005.jpg").read_bytes()
    _write(tmp_path / "b" / "conflict.jpg", first_a)
    dataset = scan_dataset(tmp_path)
    kinds = sorted(d.kind for d in dataset.duplicates)
    assert kinds == ["label_conflict", "same_class", "split_leak"]
    leak = next(d for d in dataset.duplicates if d.kind == "split_leak")
    assert leak.rel_paths == tuple(sorted((train.rel_path, held_out.rel_path)))
    assert next(d for d in dataset.duplicates if d.kind == "same_class").rel_paths == (
        "b/x/dup.jpg",
        "b/y/dup.jpg",
    )


def test_fingerprint_changes_with_content_and_only_then(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    first = scan_dataset(tmp_path).fingerprint
    assert scan_dataset(tmp_path, use_cache=False).fingerprint == first
    _write(tmp_path / "a" / "a_000.jpg", _good(77))
    assert scan_dataset(tmp_path).fingerprint != first


def test_rescan_answers_unchanged_files_from_the_cache(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 4, "b": 4})
    first = scan_dataset(tmp_path)
    assert first.cache_hits == 0
    again = scan_dataset(tmp_path)
    assert again.cache_hits == 8
    assert again.images == first.images


def test_changed_file_is_checked_again_despite_the_cache(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 4, "b": 4})
    scan_dataset(tmp_path)
    target = tmp_path / "a" / "a_001.jpg"
    target.write_bytes(b"now broken")
    dataset = scan_dataset(tmp_path)
    assert dataset.cache_hits == 7
    assert [(p.rel_path, p.kind) for p in dataset.problems] == [("a/a_001.jpg", "not_image")]


def test_progress_callback_reaches_the_total(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 4, "b": 3})
    seen: list[Progress] = []
    scan_dataset(tmp_path, progress=seen.append, use_cache=False)
    assert seen and seen[-1].phase == "scan"
    assert (seen[-1].done, seen[-1].total) == (7, 7)


def test_summary_is_json_ready_and_complete(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 4, "b": 3})
    _write(tmp_path / "a" / "bad.jpg", b"")
    summary = json.loads(json.dumps(scan_dataset(tmp_path).summary()))
    assert summary["labels"] == ["a", "b"]
    assert summary["image_count"] == 7
    assert sum(summary["split_counts"].values()) == 7
    assert summary["problems"] == [{"rel_path": "a/bad.jpg", "kind": "empty", "reason": "empty file"}]
    assert summary["trainable"] is True
    assert len(summary["fingerprint"]) == 64


@pytest.mark.parametrize("make", ["missing", "file"])
def test_root_that_is_not_a_folder_is_a_clear_error(tmp_path: Path, make: str) -> None:
    root = tmp_path / "photos"
    if make == "file":
        root.write_text("x")
    with pytest.raises(StudioError, match="photos"):
        scan_dataset(root)


def test_split_method_returns_only_that_split(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 5, "b": 5})
    dataset = scan_dataset(tmp_path)
    sizes = [len(dataset.split(s)) for s in ("train", "validation", "test")]
    assert sum(sizes) == 10 and all(sizes)
    with pytest.raises(ValueError, match="training"):
        dataset.split("training")
