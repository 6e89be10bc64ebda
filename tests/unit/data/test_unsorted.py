"""`unsorted/`: photos not sorted yet are never a class, in the scan, the split or a training."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data.scan import scan_dataset
from engine.data.walk import walk_unsorted
from tests.support.factories import image_bytes, make_image, write_class_folders


def _add_unsorted(root: Path, count: int = 4, name: str = "unsorted") -> list[Path]:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"loose_{n}.jpg"
        path.write_bytes(image_bytes(make_image(n % 2, 50 + n)))
        paths.append(path)
    return paths


@pytest.mark.parametrize("name", ["unsorted", "Unsorted", "UNSORTED"])
def test_an_unsorted_folder_is_not_a_class_and_changes_nothing_in_the_scan(
    tmp_path: Path, name: str
) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 6, "dogs": 6})
    before = scan_dataset(root, use_cache=False)
    _add_unsorted(root, name=name)
    after = scan_dataset(root, use_cache=False)
    assert after.labels == before.labels == ["cats", "dogs"]
    assert [r.rel_path for r in after.images] == [r.rel_path for r in before.images]
    assert [r.split for r in after.images] == [r.split for r in before.images]
    assert after.fingerprint == before.fingerprint
    assert not after.problems and after.trainable


def test_a_class_named_like_unsorted_but_not_it_stays_a_class(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 4, "unsorted-birds": 4})
    assert scan_dataset(root).labels == ["cats", "unsorted birds"]


def test_a_dataset_with_only_unsorted_photos_says_it_has_no_classes(tmp_path: Path) -> None:
    root = tmp_path / "pile"
    _add_unsorted(root)
    dataset = scan_dataset(root)
    assert dataset.labels == [] and not dataset.trainable
    assert any("no class folders" in e for e in dataset.errors)


def test_the_unsorted_walk_lists_its_photos_with_the_class_rules(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 3, "dogs": 3})
    photos = _add_unsorted(root, 3)
    (root / "unsorted" / "deeper").mkdir()
    (root / "unsorted" / "deeper" / "more.jpg").write_bytes(photos[0].read_bytes())
    (root / "unsorted" / ".hidden.jpg").write_bytes(photos[0].read_bytes())
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(photos[0].read_bytes())
    (root / "unsorted" / "link.jpg").symlink_to(outside)
    problems: list = []
    found = walk_unsorted((root / "unsorted").resolve(), problems, root=root.resolve())
    rels = sorted(p.relative_to(root.resolve()).as_posix() for p in found)
    assert rels == ["unsorted/deeper/more.jpg"] + [f"unsorted/loose_{n}.jpg" for n in range(3)]
    assert [p.rel_path for p in problems] == ["unsorted/link.jpg"]
    assert walk_unsorted(root / "missing", []) == []


def test_the_dashboards_move_targets_leave_out_unsorted(tmp_path: Path) -> None:
    from ui.photo_actions import class_folders

    root = write_class_folders(tmp_path / "pets", {"cats": 3, "dogs": 3})
    _add_unsorted(root, 1)
    assert class_folders(root) == ["cats", "dogs"]


@pytest.mark.slow
def test_a_training_never_learns_unsorted_as_a_class(tmp_path: Path, studio_home: Path) -> None:
    from engine.core.rundir import RunDir
    from engine.train.retrain import retrain
    from tests.support.tiny_model import ARCH, CLASSES, LABELS, tiny_config

    root = write_class_folders(tmp_path / "colours", CLASSES)
    _add_unsorted(root, 3)
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    report = retrain(tiny_config(root, tmp_path / "bottlenecks", how_many_training_steps=5), run)
    assert run.labels_path.read_text().split() == LABELS
    assert report["labels"] == LABELS
