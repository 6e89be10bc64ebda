"""The codelab's flower_photos: downloaded over https with resume, checked, extracted atomically.

The archive is fetched into a `.part` file beside the destination (kept on
purpose when interrupted, so the next attempt resumes with an HTTP Range
request), never past its expected size, its SHA-256 is checked, and it is
extracted into a held temporary folder that is renamed into place, so a
half-extracted dataset is never seen. One lock per destination
(`.flower_photos.lock` beside it) makes a second session or command wait for
the first's download and then reuse it, instead of writing the same `.part`.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from engine.core import paths
from engine.core.errors import StudioError
from engine.core.fsutil import file_lock, honour_umask, sha256_file, temp_folder
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.data.library import write_manifest

# The codelab's archive, over https. URL, size and SHA-256 as recorded by
# TensorFlow Datasets (tensorflow_datasets/url_checksums/tf_flowers.txt).
FLOWER_PHOTOS_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
)
FLOWER_PHOTOS_SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
FLOWER_PHOTOS_BYTES = 228_813_984
FLOWER_PHOTOS_NAME = "flower_photos"
# The cap for an archive of unknown size (another URL, no Content-Length).
MAX_DOWNLOAD_BYTES = 1024**3
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_CHUNK = 1 << 20


def _download(
    url: str,
    part: Path,
    *,
    expected_size: int | None,
    max_bytes: int,
    timeout: float,
    tracker_callback: ProgressCallback | None,
) -> None:
    """Fetch `url` into `part`, resuming from its current size with a Range request.

    Never writes past `expected_size` (or the announced size, or `max_bytes`):
    a server sending more is stopped and the `.part` deleted.
    """
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "retrain-studio"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and expected_size in (None, have):
            return  # the .part is already whole; the checksum decides
        if exc.code == 416:
            part.unlink(missing_ok=True)  # the server disagrees with our .part; start over next time
        raise StudioError(
            f"download of {url} failed: HTTP {exc.code} {exc.reason}; try again later"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StudioError(
            f"cannot reach {url} ({reason}); check the network connection or download "
            "flower_photos.tgz yourself and import the folder"
        ) from None
    with response:
        if have and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range)
            if not match or int(match.group(1)) != have:
                raise StudioError(
                    f"the server answered a resume request with {content_range!r}; delete {part} "
                    "and try again"
                )
            total = int(match.group(3)) if match.group(3) != "*" else expected_size
            mode = "ab"
        else:
            have = 0  # the server ignored Range: start from the beginning
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else expected_size
            mode = "wb"
        if expected_size is not None and total is not None and total != expected_size:
            raise StudioError(
                f"the server offers {total:,} bytes but flower_photos.tgz has {expected_size:,}; "
                "the file has changed or the URL is wrong"
            )
        cap = min(expected_size or total or max_bytes, max_bytes)
        if total is not None and total > cap:
            raise StudioError(
                f"the server offers {total:,} bytes, more than the {cap:,} expected; the download "
                "was not started; check the URL"
            )
        tracker = ProgressTracker("download", total or 0, tracker_callback, unit="bytes")
        tracker.done = have
        received = have
        try:
            with part.open(mode) as out:
                while chunk := response.read(_CHUNK):
                    if received + len(chunk) > cap:
                        out.close()
                        part.unlink(missing_ok=True)
                        raise StudioError(
                            f"the server sent more than the {cap:,} bytes expected; the download "
                            "was stopped and deleted; check the URL"
                        )
                    out.write(chunk)
                    received += len(chunk)
                    tracker.advance(len(chunk))
        except (http.client.IncompleteRead, OSError) as exc:
            raise StudioError(
                f"download interrupted at {received:,} of {total or 0:,} bytes ({exc}); run it "
                "again to resume"
            ) from None
        if tracker.total <= 0 or tracker.done < tracker.total:  # else already reported
            tracker.finish()
    if total is not None and received < total:
        raise StudioError(f"download stopped at {received:,} of {total:,} bytes; run it again to resume")


def _extract_tgz(archive: Path, dest: Path, progress: ProgressCallback | None, source: str) -> None:
    """Extract the archive's single top folder into `dest`, atomically and safely."""
    with temp_folder(f".{dest.name}.extract-", dest.parent) as tmp:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                tracker = ProgressTracker("extract", len(members), progress, unit="files")
                for member in members:
                    # The "data" filter refuses absolute paths, "..", links out
                    # of the folder and device files.
                    tar.extract(member, tmp, filter="data")
                    tracker.advance()
                if tracker.total <= 0 or tracker.done < tracker.total:  # else already reported
                    tracker.finish()
            tops = [p for p in tmp.iterdir() if not p.name.startswith(".")]
            inner = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp
            write_manifest(inner, "download", source=source)
            os.replace(inner, dest)
            honour_umask(dest)  # mkdtemp made it 0700
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise StudioError(
                f"{archive.name} could not be extracted ({exc}); delete it and download again"
            ) from None


def _check_url(url: str, sha256: str | None) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("https", "http", "file"):
        raise StudioError(f"url={url!r} is not an https, http or file URL")
    if parsed.scheme == "http" and sha256 is None and parsed.hostname not in _LOOPBACK_HOSTS:
        raise StudioError(
            f"url={url!r} is plain http and no SHA-256 is given to check what arrives; use https "
            "or give the archive's SHA-256"
        )


def download_flower_photos(
    *,
    url: str = FLOWER_PHOTOS_URL,
    sha256: str | None = FLOWER_PHOTOS_SHA256,
    dest_root: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    expected_size: int | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    timeout: float = 30.0,
) -> Path:
    """Download and extract the codelab's flower_photos (3,670 photos, 218 MiB).

    The archive is fetched into `<dest_root>/flower_photos.tgz.part`; an
    interrupted download is resumed with an HTTP Range request the next time.
    A short download (fewer bytes than announced) is detected and kept for
    resuming; a checksum mismatch deletes the file. Once complete, the archive
    is extracted into a temporary folder and renamed to
    `<dest_root>/flower_photos`, then deleted. If that folder exists already,
    it is returned without downloading. A second call while one is under way
    (another session, another process) waits for it and returns its folder.

    Args:
        url: where to fetch it: https, or http only with a `sha256` or on
            this machine (127.0.0.1). Defaults to `FLOWER_PHOTOS_URL` (https).
        sha256: the expected SHA-256, or None to skip the check. Defaults to
            `FLOWER_PHOTOS_SHA256` (from TensorFlow Datasets' checksums).
        dest_root: the folder to put it in. Defaults to `engine.core.paths.datasets_dir()`.
        progress: called with `Progress` (phases "download", unit "bytes";
            then "extract", unit "files"). Defaults to None.
        expected_size: the archive's size in bytes, checked against what the
            server announces; the download stops past it. Defaults to
            `FLOWER_PHOTOS_BYTES` for the default URL, else None.
        max_bytes: the most bytes accepted when the size is not known.
            Defaults to `MAX_DOWNLOAD_BYTES` (1 GiB).
        timeout: seconds to wait for the server. Defaults to 30.

    Returns:
        The dataset folder (`<dest_root>/flower_photos`).

    Raises:
        StudioError: a plain-http URL without a checksum, the server is
            unreachable, sends more than expected, the download is interrupted
            or short (run again to resume), the checksum does not match, or
            the archive cannot be extracted.
    """
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"sha256={sha256!r} must be 64 hex digits or None")
    _check_url(url, sha256)
    if expected_size is None and url == FLOWER_PHOTOS_URL:
        expected_size = FLOWER_PHOTOS_BYTES
    root = Path(dest_root).expanduser() if dest_root is not None else paths.datasets_dir()
    dest = root / FLOWER_PHOTOS_NAME
    if dest.is_dir():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{FLOWER_PHOTOS_NAME}.lock"):
        if dest.is_dir():  # another session finished it while we waited
            return dest
        part = root / f"{FLOWER_PHOTOS_NAME}.tgz.part"
        _download(
            url,
            part,
            expected_size=expected_size,
            max_bytes=max_bytes,
            timeout=timeout,
            tracker_callback=progress,
        )
        if sha256 is not None:
            actual = sha256_file(part)
            if actual != sha256.lower():
                part.unlink(missing_ok=True)
                raise StudioError(
                    f"the downloaded archive's SHA-256 is {actual}, expected {sha256.lower()}; the "
                    "corrupt file was deleted; try again"
                )
        _extract_tgz(part, dest, progress, url)
        with contextlib.suppress(OSError):
            part.unlink()
    return dest
