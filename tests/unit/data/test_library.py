"""engine.data.library: the studio's own datasets are listed and deleted; nothing else ever is."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.data.demo import write_demo_dataset
from engine.data.download import download_flower_photos
from engine.data.library import MANIFEST_NAME, delete_dataset, list_datasets, read_manifest
from engine.data.scan import scan_dataset
from engine.data.sources import import_zip
from tests.support.factories import flower_tgz, photo_entries, write_class_folders, zip_bytes


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    """A datasets folder holding one of each kind the studio makes."""
    root = tmp_path / "datasets"
    write_demo_dataset(root / "demo", images_per_class=3)
    import_zip(zip_bytes(photo_entries()), dest_root=root, name="birds")
    archive = tmp_path / "flower_photos.tgz"
    archive.write_bytes(flower_tgz())
    download_flower_photos(url=archive.as_uri(), sha256=None, dest_root=root)
    return root


def test_the_studios_datasets_are_listed_with_their_kind_size_and_origin(datasets: Path) -> None:
    write_class_folders(datasets / "my_photos", {"a": 3, "b": 3})  # the user's own: not listed
    (datasets / ".hidden").mkdir()
    found = {d.name: d for d in list_datasets(datasets)}
    assert {n: d.kind for n, d in found.items()} == {
        "demo": "demo",
        "birds": "import",
        "flower_photos": "download",
    }
    birds = found["birds"]
    assert birds.path == datasets / "birds"
    assert birds.files == 6 and birds.size_bytes == sum(len(v) for v in photo_entries().values())
    assert birds.source is None  # imported from bytes, which carry no file name
    assert found["flower_photos"].source.startswith("file://")
    assert found["flower_photos"].files == 9  # 8 photos and LICENSE.txt
    assert birds.created  # ISO time


def test_the_manifest_is_hidden_from_the_scan(datasets: Path) -> None:
    assert (datasets / "birds" / MANIFEST_NAME).is_file()
    dataset = scan_dataset(datasets / "birds")
    assert dataset.problems == [] and len(dataset.images) == 6


def test_delete_removes_a_studio_dataset_and_leaves_no_trace(datasets: Path) -> None:
    assert delete_dataset("birds", datasets) == datasets / "birds"
    assert not (datasets / "birds").exists()
    assert sorted(d.name for d in list_datasets(datasets)) == ["demo", "flower_photos"]
    assert [p.name for p in datasets.iterdir() if p.name.startswith(".deleting")] == []


def test_delete_refuses_a_folder_the_studio_did_not_make(datasets: Path) -> None:
    mine = write_class_folders(datasets / "my_photos", {"a": 3, "b": 3})
    before = _tree(mine)
    with pytest.raises(StudioError, match="not made by Retrain Studio"):
        delete_dataset("my_photos", datasets)
    assert _tree(mine) == before


@pytest.mark.parametrize(
    "manifest",
    [
        "not json",
        json.dumps({"kind": "import"}),  # not ours
        json.dumps({"made_by": "retrain-studio", "kind": "anything"}),
    ],
)
def test_a_forged_or_broken_manifest_does_not_make_a_folder_deletable(
    datasets: Path, manifest: str
) -> None:
    mine = write_class_folders(datasets / "my_photos", {"a": 3, "b": 3})
    (mine / MANIFEST_NAME).write_text(manifest)
    with pytest.raises(StudioError, match="not made by Retrain Studio"):
        delete_dataset("my_photos", datasets)
    assert (mine / "a").is_dir()


def test_a_manifest_that_is_a_link_does_not_count(datasets: Path) -> None:
    mine = write_class_folders(datasets / "my_photos", {"a": 3, "b": 3})
    os.symlink(datasets / "birds" / MANIFEST_NAME, mine / MANIFEST_NAME)
    assert read_manifest(mine) is None
    with pytest.raises(StudioError, match="not made by Retrain Studio"):
        delete_dataset("my_photos", datasets)


def test_delete_refuses_a_symlink_even_to_a_studio_dataset(datasets: Path, tmp_path: Path) -> None:
    elsewhere = import_zip(zip_bytes(photo_entries()), dest_root=tmp_path / "elsewhere", name="real")
    os.symlink(elsewhere, datasets / "linked")
    assert "linked" not in [d.name for d in list_datasets(datasets)]
    with pytest.raises(StudioError, match="symbolic link"):
        delete_dataset("linked", datasets)
    assert (datasets / "linked").is_symlink()
    assert len(scan_dataset(elsewhere).images) == 6


@pytest.mark.parametrize("name", ["", "..", "../datasets", ".hidden", "birds/..", "a\\b", "x\x00"])
def test_delete_refuses_names_that_are_not_a_folder_in_the_datasets_folder(
    datasets: Path, name: str
) -> None:
    before = _tree(datasets.parent)
    with pytest.raises(StudioError, match="not a dataset name"):
        delete_dataset(name, datasets)
    assert _tree(datasets.parent) == before


def test_deleting_a_missing_dataset_says_how_to_list_them(datasets: Path) -> None:
    with pytest.raises(StudioError, match="no dataset 'nothing'.*python -m engine datasets"):
        delete_dataset("nothing", datasets)
