"""engine.data.download: flower_photos over HTTP (a loopback server): checksum, resume, reuse."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.progress import Progress
from engine.data.download import download_flower_photos
from engine.data.scan import scan_dataset
from tests.support.factories import flower_tgz
from tests.support.loopback import serve_on_loopback


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


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


def test_download_checks_the_checksum_and_extracts(tmp_path: Path, server: tuple[str, _Archive]) -> None:
    url, archive = server
    archive.data = flower_tgz()
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
    archive.data = flower_tgz()
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
    archive.data = flower_tgz()
    archive.honour_range = False
    (tmp_path / "flower_photos.tgz.part").write_bytes(b"stale bytes from some other file")
    dest = download_flower_photos(
        url=url, sha256=hashlib.sha256(archive.data).hexdigest(), dest_root=tmp_path
    )
    assert len(scan_dataset(dest).images) == 8


def test_checksum_mismatch_deletes_the_download(tmp_path: Path, server: tuple[str, _Archive]) -> None:
    url, archive = server
    archive.data = flower_tgz()
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
