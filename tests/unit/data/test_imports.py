"""engine.data.sources.import_zip against hostile zips, the import quota, and two imports at once."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.fsutil import file_lock, temp_folder
from engine.data.library import delete_dataset, list_datasets, reserve_import
from engine.data.scan import scan_dataset
from engine.data.sources import MAX_ZIP_FILES, import_zip
from tests.support.cli import REPO_ROOT, run_engine
from tests.support.factories import photo_entries, zip_bytes
from tests.support.locks import blocked_on_a_lock
from tests.support.waiting import wait_for


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def _forbid_zipfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, fail if zipfile parses a central directory (the refusal must come first)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile.ZipFile walked the central directory before the count was checked")

    monkeypatch.setattr(zipfile, "ZipFile", refuse)


def _with_declared_count(data: bytes, count: int) -> bytes:
    """`data` with its end of central directory record claiming `count` entries."""
    out = bytearray(data)
    at = out.rfind(b"PK\x05\x06")
    out[at + 8 : at + 12] = struct.pack("<HH", count, count)
    return bytes(out)


# ---------------------------------------------------------------- entry counts


def test_directory_entries_count_toward_the_limit(tmp_path: Path) -> None:
    folders = {f"daisy/empty{i}/": b"" for i in range(60)}  # each would become a real folder
    data = zip_bytes(photo_entries() | folders)
    with pytest.raises(
        StudioError, match=r"declares 66 entries \(files and folders\), more than the limit of 50"
    ):
        import_zip(data, dest_root=tmp_path, name="dirs", max_files=50)
    assert _tree(tmp_path) == []
    assert len(scan_dataset(import_zip(data, dest_root=tmp_path, max_files=100)).images) == 6


def test_folders_implied_by_deep_paths_count_toward_the_limit(tmp_path: Path) -> None:
    deep = {f"daisy/a{i}/b/c/x.jpg": b"x" for i in range(20)}  # 26 entries, 62 folders
    with pytest.raises(StudioError, match=r"26 files in 62 folders, more than the limit of 50 entries"):
        import_zip(zip_bytes(photo_entries() | deep), dest_root=tmp_path, max_files=50)
    assert _tree(tmp_path) == []


def test_a_declared_count_over_the_limit_is_refused_before_the_directory_is_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _with_declared_count(zip_bytes(photo_entries()), 60_000)
    _forbid_zipfile(monkeypatch)
    with pytest.raises(StudioError, match="declares 60,000 entries"):
        import_zip(data, dest_root=tmp_path)
    assert _tree(tmp_path) == []


def test_a_record_that_lies_about_the_count_is_caught_by_counting_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = {f"daisy/{i}.jpg": b"x" for i in range(200)}
    data = _with_declared_count(zip_bytes(photo_entries() | many), 3)
    _forbid_zipfile(monkeypatch)
    with pytest.raises(
        StudioError, match=r"holds more than 50 entries \(files and folders\) although it declares 3"
    ):
        import_zip(data, dest_root=tmp_path, max_files=50)
    assert _tree(tmp_path) == []


def test_a_zip64_count_is_read_from_the_zip64_end_record(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # over 65,535 entries: zipfile writes zip64
        for i in range(MAX_ZIP_FILES + 15_600):
            archive.writestr(f"d{i}/", b"")
    data = buffer.getvalue()
    assert b"PK\x06\x06" in data[-200:]
    with pytest.raises(StudioError, match=f"declares {MAX_ZIP_FILES + 15_600:,} entries"):
        import_zip(data, dest_root=tmp_path)


# ---------------------------------------------------------------- names the disk refuses


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            {"daisy/a.jpg": b"x", "daisy/a.jpg/b.jpg": b"y"},
            "'daisy/a.jpg' both as a file and as a folder",
        ),
        ({"roses/x/": b"", "roses/x": b"y"}, "'roses/x' both as a file and as a folder"),
        ({"daisy/" + "a" * 300 + ".jpg": b"x"}, "304 bytes; file and folder names are limited to 255"),
        ({"daisy/" + "é" * 130 + "/a.jpg": b"x"}, "260 bytes"),
    ],
)
def test_names_the_disk_would_refuse_are_a_clear_error_and_nothing_is_written(
    tmp_path: Path, entries: dict[str, bytes], message: str
) -> None:
    with pytest.raises(StudioError, match=message):
        import_zip(zip_bytes(photo_entries() | entries), dest_root=tmp_path, name="clash")
    assert _tree(tmp_path) == []


def test_a_named_pipe_given_as_the_zip_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "photos.zip")
    out = run_engine("import-zip", "--zip", str(tmp_path / "photos.zip"), home=tmp_path, timeout=60)
    assert out.returncode == 2
    assert "is not a regular file" in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------- the quota


@pytest.fixture
def photos(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Photos for a zip, with a quota of one and a half zips of them."""
    photos = photo_entries()
    monkeypatch.setenv("RETRAIN_STUDIO_IMPORT_QUOTA_BYTES", str(_size(photos) * 3 // 2))
    return photos


def _size(photos: dict[str, bytes]) -> int:
    return sum(len(v) for v in photos.values())


def test_imports_share_a_quota_and_deleting_frees_it(tmp_path: Path, photos: dict[str, bytes]) -> None:
    first = import_zip(zip_bytes(photos), dest_root=tmp_path, name="first")
    with pytest.raises(
        StudioError, match=r"over the quota of .*RETRAIN_STUDIO_IMPORT_QUOTA_BYTES.*--delete"
    ):
        import_zip(zip_bytes(photos), dest_root=tmp_path, name="second")
    assert [d.name for d in list_datasets(tmp_path)] == ["first"]
    delete_dataset(first.name, tmp_path)
    assert import_zip(zip_bytes(photos), dest_root=tmp_path, name="second").is_dir()


def test_an_import_still_unpacking_counts_toward_the_quota(
    tmp_path: Path, photos: dict[str, bytes]
) -> None:
    with temp_folder(".other.import-", tmp_path) as other:  # another session's import, mid-way
        with file_lock(tmp_path):
            reserve_import(other, _size(photos), root=tmp_path)
        with pytest.raises(StudioError, match="over the quota"):
            import_zip(zip_bytes(photos), dest_root=tmp_path, name="mine")
    assert import_zip(zip_bytes(photos), dest_root=tmp_path, name="mine").is_dir()


# ---------------------------------------------------------------- two imports at once


def test_two_imports_at_once_both_finish_under_their_own_names(tmp_path: Path) -> None:
    archive = tmp_path / "set.zip"
    archive.write_bytes(zip_bytes(photo_entries()))
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    command = [
        sys.executable,
        "-m",
        "engine",
        "import-zip",
        "--zip",
        str(archive),
        "--dest",
        str(datasets),
    ]
    with file_lock(datasets):  # both reach the moment they pick a name and reserve quota, then wait
        imports = [
            subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        for proc in imports:
            wait_for(lambda p=proc: blocked_on_a_lock(p.pid), timeout=60, what="an import waiting")
    outputs = [proc.communicate(timeout=120) for proc in imports]
    assert [proc.returncode for proc in imports] == [0, 0], outputs
    made = sorted(Path(out.strip()).name for out, _ in outputs)
    assert made == ["set", "set-2"]
    assert sorted(d.name for d in list_datasets(datasets)) == made
    for name in made:
        assert len(scan_dataset(datasets / name).images) == 6
    assert [p.name for p in datasets.iterdir() if p.name.startswith(".")] == []  # no temp left
