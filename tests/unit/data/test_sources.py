"""Getting data in: local folders, zip uploads (and their attacks), the loopback download."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.datasets import download_flower_photos, import_zip, resolve_local_folder, scan_dataset
from engine.errors import StudioError
from engine.progress import Progress

from .factories import image_bytes, make_image
from .loopback import serve_on_loopback

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


def _zip(entries: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def _photos(prefix: str = "", per_class: int = 3) -> dict[str, bytes]:
    return {
        f"{prefix}{label}/{label}_{i}.jpg": image_bytes(make_image(c, i))
        for c, label in enumerate(("daisy", "roses"))
        for i in range(per_class)
    }


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize("prefix", ["", "flowers/"])
def test_zip_with_classes_at_top_or_in_one_folder_imports(tmp_path: Path, prefix: str) -> None:
    data = _photos(prefix) | {f"{prefix}README.txt": b"hi", "__MACOSX/._x": b"junk"}
    dest = import_zip(_zip(data), dest_root=tmp_path, name="flowers")
    assert dest == tmp_path / "flowers"
    dataset = scan_dataset(dest)
    assert dataset.labels == ["daisy", "roses"]
    assert len(dataset.images) == 6
    assert not (dest / "__MACOSX").exists()


def test_zip_import_never_overwrites_an_existing_dataset(tmp_path: Path) -> None:
    first = import_zip(_zip(_photos()), dest_root=tmp_path, name="set")
    second = import_zip(_zip(_photos()), dest_root=tmp_path, name="set")
    assert (first.name, second.name) == ("set", "set-2")


def test_zip_import_reports_progress_in_bytes(tmp_path: Path) -> None:
    seen: list[Progress] = []
    photos = _photos()
    import_zip(_zip(photos), dest_root=tmp_path, progress=seen.append)
    assert seen[-1].unit == "bytes"
    assert seen[-1].done == seen[-1].total == sum(len(v) for v in photos.values())


def test_zip_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    archive = tmp_path / "my photos.zip"
    archive.write_bytes(_zip(_photos()))
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
    data = _zip(_photos() | entries, links=links)
    with pytest.raises(StudioError, match=message):
        import_zip(data, dest_root=dest_root, name="bad", **limits)
    assert _tree(tmp_path) == ["datasets"]


def test_entry_inflating_past_its_declared_size_is_refused(tmp_path: Path) -> None:
    # A zip bomb can lie about sizes: shrink the declared size of one entry.
    data = bytearray(_zip({"daisy/a.jpg": b"\0" * 100_000, "roses/b.jpg": b"\0" * 10}))
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
        (_zip({"a.jpg": b"x", "b.jpg": b"y"}), "no class folders"),
    ],
)
def test_zip_without_class_folders_is_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(StudioError, match=message):
        import_zip(data, dest_root=tmp_path)
    assert _tree(tmp_path) == []


# ---------------------------------------------------------------- download


class _Archive:
    """What the loopback server serves, and what it was asked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.cut_at: int | None = None  # announce everything, send only this much
        self.honour_range = True
        self.requests: list[str | None] = []


@pytest.fixture
def server() -> Iterator[tuple[str, _Archive]]:
    archive = _Archive(b"")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/flower_photos.tgz":
                self.send_error(404)
                return
            wanted = self.headers.get("Range")
            archive.requests.append(wanted)
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
            if match and archive.honour_range:
                start = int(match.group(1))
                self.send_response(206)
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(archive.data) - 1}/{len(archive.data)}"
                )
            else:
                self.send_response(200)
            body = archive.data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if archive.cut_at is not None:
                body = body[: max(0, archive.cut_at - start)]
                archive.cut_at = None
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    with serve_on_loopback(Handler) as url:
        yield f"{url}/flower_photos.tgz", archive


def _flower_tgz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        files = {"flower_photos/LICENSE.txt": b"CC-BY"} | _photos("flower_photos/", per_class=4)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_download_checks_the_checksum_and_extracts(tmp_path: Path, server: tuple[str, _Archive]) -> None:
    url, archive = server
    archive.data = _flower_tgz()
    seen: list[Progress] = []
    dest = download_flower_photos(
        url=url,
        sha256=hashlib.sha256(archive.data).hexdigest(),
        dest_root=tmp_path,
        progress=seen.append,
    )
    assert dest == tmp_path / "flower_photos"
    assert scan_dataset(dest).labels == ["daisy", "roses"]
    assert (dest / "LICENSE.txt").exists()
    assert _tree(tmp_path)[0] == "flower_photos"  # no archive or temp folder left
    assert all(not p.startswith(".") and not p.endswith(".part") for p in os.listdir(tmp_path))
    download = [p for p in seen if p.phase == "download"]
    assert download[-1].done == download[-1].total == len(archive.data)


def test_truncated_download_is_detected_and_resumed_with_range(
    tmp_path: Path, server: tuple[str, _Archive]
) -> None:
    url, archive = server
    archive.data = _flower_tgz()
    archive.cut_at = len(archive.data) // 2
    digest = hashlib.sha256(archive.data).hexdigest()
    with pytest.raises(StudioError, match="run it again to resume"):
        download_flower_photos(url=url, sha256=digest, dest_root=tmp_path)
    part = tmp_path / "flower_photos.tgz.part"
    assert part.stat().st_size == len(archive.data) // 2
    assert not (tmp_path / "flower_photos").exists()
    dest = download_flower_photos(url=url, sha256=digest, dest_root=tmp_path)
    assert archive.requests == [None, f"bytes={len(archive.data) // 2}-"]
    assert len(scan_dataset(dest).images) == 8


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, server: tuple[str, _Archive]) -> None:
    url, archive = server
    archive.data = _flower_tgz()
    archive.honour_range = False
    (tmp_path / "flower_photos.tgz.part").write_bytes(b"stale bytes from some other file")
    dest = download_flower_photos(
        url=url, sha256=hashlib.sha256(archive.data).hexdigest(), dest_root=tmp_path
    )
    assert len(scan_dataset(dest).images) == 8


def test_checksum_mismatch_deletes_the_download(tmp_path: Path, server: tuple[str, _Archive]) -> None:
    url, archive = server
    archive.data = _flower_tgz()
    with pytest.raises(StudioError, match="SHA-256"):
        download_flower_photos(url=url, sha256="0" * 64, dest_root=tmp_path)
    assert _tree(tmp_path) == []


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="cannot reach"):
        download_flower_photos(
            url="http://127.0.0.1:9/flower_photos.tgz", sha256=None, dest_root=tmp_path, timeout=5
        )


def test_existing_download_is_reused_without_network(tmp_path: Path) -> None:
    (tmp_path / "flower_photos" / "daisy").mkdir(parents=True)
    assert (
        download_flower_photos(url="http://127.0.0.1:9/x.tgz", dest_root=tmp_path)
        == tmp_path / "flower_photos"
    )
