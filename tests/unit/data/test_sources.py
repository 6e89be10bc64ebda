"""Getting data in: local folders and zip uploads (and their attacks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.progress import Progress
from engine.data.scan import scan_dataset
from engine.data.sources import import_zip, resolve_local_folder
from tests.support.factories import photo_entries, zip_bytes

# ---------------------------------------------------------------- local folder


def test_local_folder_is_resolved(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    assert (
        resolve_local_folder(str(tmp_path / "photos" / ".." / "photos"))
        == (tmp_path / "photos").resolve()
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [("missing", "does not exist"), ("file", "is a file"), ("blank", "no folder given")],
)
def test_unusable_local_folder_is_a_clear_error(tmp_path: Path, make: str, message: str) -> None:
    target = tmp_path / "photos"
    if make == "file":
        target.write_text("x")
    with pytest.raises(StudioError, match=message):
        resolve_local_folder("  " if make == "blank" else str(target))


def test_folder_outside_the_data_roots_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    (allowed / "photos").mkdir(parents=True)
    other.mkdir()
    monkeypatch.setenv("RETRAIN_STUDIO_DATA_ROOTS", str(allowed))
    assert resolve_local_folder(allowed / "photos") == (allowed / "photos").resolve()
    with pytest.raises(StudioError, match="outside the allowed data folders"):
        resolve_local_folder(other)
    with pytest.raises(StudioError, match="outside the allowed data folders"):
        resolve_local_folder(str(allowed / "photos" / ".." / ".." / "other"))


def test_symlink_escaping_the_data_roots_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    os.symlink(other, allowed / "sneaky")
    monkeypatch.setenv("RETRAIN_STUDIO_DATA_ROOTS", str(allowed))
    with pytest.raises(StudioError, match="outside"):
        resolve_local_folder(allowed / "sneaky")


# ---------------------------------------------------------------- zip import


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize("prefix", ["", "flowers/"])
def test_zip_with_classes_at_top_or_in_one_folder_imports(tmp_path: Path, prefix: str) -> None:
    data = photo_entries(prefix) | {f"{prefix}README.txt": b"hi", "__MACOSX/._x": b"junk"}
    dest = import_zip(zip_bytes(data), dest_root=tmp_path, name="flowers")
    assert dest == tmp_path / "flowers"
    dataset = scan_dataset(dest)
    assert dataset.labels == ["daisy", "roses"]
    assert len(dataset.images) == 6
    assert not (dest / "__MACOSX").exists()


def test_zip_import_never_overwrites_an_existing_dataset(tmp_path: Path) -> None:
    first = import_zip(zip_bytes(photo_entries()), dest_root=tmp_path, name="set")
    second = import_zip(zip_bytes(photo_entries()), dest_root=tmp_path, name="set")
    assert (first.name, second.name) == ("set", "set-2")


def test_zip_import_reports_progress_in_bytes(tmp_path: Path) -> None:
    seen: list[Progress] = []
    photos = photo_entries()
    import_zip(zip_bytes(photos), dest_root=tmp_path, progress=seen.append)
    assert seen[-1].unit == "bytes"
    assert seen[-1].done == seen[-1].total == sum(len(v) for v in photos.values())


def test_zip_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    archive = tmp_path / "my photos.zip"
    archive.write_bytes(zip_bytes(photo_entries()))
    assert import_zip(archive, dest_root=tmp_path / "out").name == "my photos"


@pytest.mark.parametrize(
    ("entries", "links", "limits", "message"),
    [
        ({"../evil.jpg": b"x"}, None, {}, "outside the archive"),
        ({"daisy/../../evil.jpg": b"x"}, None, {}, "outside the archive"),
        ({"/etc/evil.jpg": b"x"}, None, {}, "absolute path"),
        ({"C:/evil.jpg": b"x"}, None, {}, "absolute path"),
        ({"daisy\\..\\..\\evil.jpg": b"x"}, None, {}, "outside the archive"),
        ({}, {"daisy/link.jpg": "/etc/passwd"}, {}, "symbolic link"),
        ({}, None, {"max_files": 5}, "more than the limit of 5"),
        ({}, None, {"max_bytes": 1000}, "limit of 1,000"),
    ],
)
def test_unsafe_zip_is_refused_and_nothing_is_written(
    tmp_path: Path, entries: dict, links: dict | None, limits: dict, message: str
) -> None:
    dest_root = tmp_path / "datasets"
    dest_root.mkdir()
    data = zip_bytes(photo_entries() | entries, links=links)
    with pytest.raises(StudioError, match=message):
        import_zip(data, dest_root=dest_root, name="bad", **limits)
    assert _tree(tmp_path) == ["datasets"]


def test_entry_inflating_past_its_declared_size_is_refused(tmp_path: Path) -> None:
    # A zip bomb can lie about sizes: shrink the declared size of one entry.
    data = bytearray(zip_bytes({"daisy/a.jpg": b"\0" * 100_000, "roses/b.jpg": b"\0" * 10}))
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x01\x02"))
    data[central + 24 : central + 28] = (50).to_bytes(4, "little")  # uncompressed size
    local = data.find(b"PK\x03\x04")
    data[local + 22 : local + 26] = (50).to_bytes(4, "little")
    with pytest.raises(StudioError, match="zip"):
        import_zip(bytes(data), dest_root=tmp_path / "d", name="bomb")
    assert _tree(tmp_path / "d") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"definitely not a zip", "not a readable zip"),
        (zip_bytes({"a.jpg": b"x", "b.jpg": b"y"}), "no class folders"),
    ],
)
def test_zip_without_class_folders_is_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(StudioError, match=message):
        import_zip(data, dest_root=tmp_path)
    assert _tree(tmp_path) == []
