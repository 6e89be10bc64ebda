"""engine.data.download: flower_photos over HTTP (a loopback server): checksum, resume, reuse, cap, lock."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.progress import Progress
from engine.data.download import FLOWER_PHOTOS_BYTES, FLOWER_PHOTOS_URL, download_flower_photos
from engine.data.library import list_datasets
from engine.data.scan import scan_dataset
from tests.support.cli import REPO_ROOT
from tests.support.factories import flower_tgz
from tests.support.locks import blocked_on_a_lock
from tests.support.loopback import serve_on_loopback
from tests.support.waiting import wait_for

LOCK = ".flower_photos.lock"  # one lock per destination, kept beside it


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


class _Archive:
    """What the loopback server serves, and what it was asked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.cut_at: int | None = None  # announce everything, send only this much
        self.honour_range = True
        self.announce_length = True  # False: no Content-Length, the body ends when the connection closes
        self.extra = b""  # sent after the archive, unannounced
        self.started = threading.Event()  # set when a request arrives
        self.gate: threading.Event | None = None  # when set, the body waits for it
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
            archive.started.set()
            if archive.gate is not None:
                archive.gate.wait(timeout=60)
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
            if archive.announce_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            body += archive.extra
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
    assert _tree(tmp_path)[1] == "flower_photos"  # no archive or temp folder left
    # only the destination's lock file, beside it, and the dataset
    assert sorted(os.listdir(tmp_path)) == [LOCK, "flower_photos"]
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
    assert _tree(tmp_path) == [LOCK]


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


# ---------------------------------------------------------------- https, the size cap, one lock


def test_the_default_address_is_https_with_the_recorded_size() -> None:
    assert FLOWER_PHOTOS_URL.startswith("https://")
    assert FLOWER_PHOTOS_BYTES == 228_813_984


def test_plain_http_elsewhere_without_a_checksum_is_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="plain http and no SHA-256"):
        download_flower_photos(
            url="http://mirror.example.invalid/f.tgz", sha256=None, dest_root=tmp_path
        )
    assert _tree(tmp_path) == []


def test_a_server_sending_more_than_expected_is_stopped_and_the_part_deleted(
    tmp_path: Path, server: tuple[str, _Archive]
) -> None:
    url, archive = server
    archive.data = flower_tgz()
    archive.announce_length = False
    archive.extra = b"\0" * (3 << 20)
    with pytest.raises(StudioError, match=f"more than the {len(archive.data):,} bytes expected"):
        download_flower_photos(url=url, sha256=None, dest_root=tmp_path, expected_size=len(archive.data))
    assert _tree(tmp_path) == [LOCK]  # neither a .part nor a dataset


def test_an_archive_of_unknown_size_is_capped(tmp_path: Path, server: tuple[str, _Archive]) -> None:
    url, archive = server
    archive.data = flower_tgz()
    archive.announce_length = False
    with pytest.raises(StudioError, match="more than the 1,000 bytes expected"):
        download_flower_photos(url=url, sha256=None, dest_root=tmp_path, max_bytes=1000)
    assert _tree(tmp_path) == [LOCK]


def test_an_announced_size_over_the_expected_one_is_refused_before_downloading(
    tmp_path: Path, server: tuple[str, _Archive]
) -> None:
    url, archive = server
    archive.data = flower_tgz()
    with pytest.raises(StudioError, match="the server offers"):
        download_flower_photos(url=url, sha256=None, dest_root=tmp_path, max_bytes=1000)
    assert _tree(tmp_path) == [LOCK]


SECOND_DOWNLOAD = """
import sys
from engine.data.download import download_flower_photos
print(download_flower_photos(url=sys.argv[1], sha256=sys.argv[2], dest_root=sys.argv[3]))
"""


def test_a_second_download_waits_for_the_first_and_reuses_it(
    tmp_path: Path, server: tuple[str, _Archive]
) -> None:
    url, archive = server
    archive.data = flower_tgz()
    archive.gate = threading.Event()  # the first download stalls mid-way until we say
    digest = hashlib.sha256(archive.data).hexdigest()
    first: dict[str, object] = {}

    def download() -> None:
        try:
            first["dest"] = download_flower_photos(url=url, sha256=digest, dest_root=tmp_path)
        except StudioError as exc:  # reported by the assertion below
            first["error"] = exc

    thread = threading.Thread(target=download, daemon=True)
    thread.start()
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(archive.started.is_set, what="the first download's request")
        second = subprocess.Popen(
            [sys.executable, "-c", SECOND_DOWNLOAD, url, digest, str(tmp_path)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(lambda: blocked_on_a_lock(second.pid), what="the second download waiting on the lock")
    finally:
        archive.gate.set()
    thread.join(timeout=60)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert first == {"dest": tmp_path / "flower_photos"}
    assert out.strip() == str(tmp_path / "flower_photos")
    assert archive.requests == [None]  # one download, reused
    assert [d.kind for d in list_datasets(tmp_path)] == ["download"]
    assert len(scan_dataset(tmp_path / "flower_photos").images) == 8
