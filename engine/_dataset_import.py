"""Getting a dataset in: a local folder, an uploaded zip, or the flower_photos download.

Each way in writes only inside its destination and is atomic: the data is
built in a temporary folder beside the destination and renamed into place at
the end, so a failed or interrupted import leaves nothing behind (except a
download's `.part` file, kept on purpose so the next attempt resumes).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from engine import paths
from engine.errors import StudioError
from engine.progress import ProgressCallback, ProgressTracker

# The codelab's archive. Size and SHA-256 as recorded by TensorFlow Datasets
# (tensorflow_datasets/url_checksums/tf_flowers.txt).
FLOWER_PHOTOS_URL = "http://download.tensorflow.org/example_images/flower_photos.tgz"
FLOWER_PHOTOS_SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
FLOWER_PHOTOS_BYTES = 228_813_984
FLOWER_PHOTOS_NAME = "flower_photos"

# Zip limits: generous for a photo dataset, far below a zip bomb.
MAX_ZIP_FILES = 50_000
MAX_ZIP_BYTES = 4 * 1024**3
_CHUNK = 1 << 20
_JUNK_PARTS = frozenset({"__macosx", ".ds_store", "thumbs.db", "desktop.ini"})
_SAFE_NAME = re.compile(r"[^\w.\- ]+")


def resolve_local_folder(path: str | os.PathLike[str]) -> Path:
    """Check a folder path typed by the user and return it resolved.

    When `RETRAIN_STUDIO_DATA_ROOTS` is set (an app reachable beyond
    localhost), the folder must lie inside one of those roots, after
    resolving symbolic links and `..`.

    Args:
        path: the folder.

    Returns:
        The absolute, resolved folder.

    Raises:
        StudioError: empty, missing, not a folder, or outside the allowed roots.
    """
    text = os.fspath(path).strip() if isinstance(path, str | os.PathLike) else ""
    if not text:
        raise StudioError("no folder given; type the path of a folder holding one sub-folder per class")
    folder = Path(text).expanduser().resolve()
    roots = paths.data_roots()
    if roots is not None and not any(folder == r or r in folder.parents for r in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise StudioError(
            f"folder {text!r} is outside the allowed data folders ({allowed}); move the data "
            "there or ask whoever runs the app to add its folder to RETRAIN_STUDIO_DATA_ROOTS"
        )
    if not folder.exists():
        raise StudioError(f"folder {text!r} does not exist; check the path")
    if not folder.is_dir():
        raise StudioError(f"{text!r} is a file, not a folder; give the folder holding the class folders")
    return folder


def _unique_dest(dest_root: Path, name: str) -> Path:
    candidate = dest_root / name
    n = 2
    while candidate.exists():
        candidate = dest_root / f"{name}-{n}"
        n += 1
    return candidate


def _safe_dataset_name(name: str) -> str:
    cleaned = _SAFE_NAME.sub("_", name).strip(" ._")
    return cleaned[:80] or "dataset"


def _entry_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The entry's path parts, refusing anything that could escape the target."""
    raw = info.filename
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise StudioError(f"zip entry {raw!r} has an absolute path; refusing the whole archive")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise StudioError(f"zip entry {raw!r} points outside the archive ('..'); refusing it")
    if "\x00" in name:
        raise StudioError(f"zip entry {raw!r} has a NUL character; refusing the archive")
    return parts


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p.lower() in _JUNK_PARTS or p.startswith("._") for p in parts)


def import_zip(
    source: str | os.PathLike[str] | bytes | IO[bytes],
    *,
    dest_root: str | os.PathLike[str] | None = None,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    max_files: int = MAX_ZIP_FILES,
    max_bytes: int = MAX_ZIP_BYTES,
) -> Path:
    """Extract a zip of class folders into a new dataset folder, safely and atomically.

    The classes may be at the top of the archive or inside one top folder
    (`photos.zip: photos/daisy/...`). The whole archive is refused, and
    nothing is written, when an entry is absolute, contains `..`, is a
    symbolic link or is encrypted, or when the archive declares more than
    `max_files` files or `max_bytes` uncompressed bytes. Bytes are also
    counted while extracting, so an entry that inflates past its declared
    size is caught too. `__MACOSX` and `._*` entries are skipped.

    Args:
        source: the zip as a path, bytes, or a binary file object (an upload).
        dest_root: the folder to create the dataset in. Defaults to
            `engine.paths.datasets_dir()`.
        name: the new folder's name (made safe; "-2", "-3" added if taken).
            Defaults to the zip's file name without ".zip", else "upload".
        progress: called with `Progress` (phase "import", unit "bytes").
            Defaults to None.
        max_files: most files accepted. Defaults to `MAX_ZIP_FILES`.
        max_bytes: most uncompressed bytes accepted. Defaults to `MAX_ZIP_BYTES`.

    Returns:
        The new dataset folder.

    Raises:
        StudioError: not a zip, unsafe or too large, or no class folders in it.
    """
    if max_files <= 0 or max_bytes <= 0:
        raise ValueError(f"max_files={max_files!r} and max_bytes={max_bytes!r} must be positive")
    if name is None:
        source_name = source if isinstance(source, str | os.PathLike) else getattr(source, "name", None)
        name = Path(os.fspath(source_name)).stem if source_name else "upload"
    root = Path(dest_root).expanduser() if dest_root is not None else paths.datasets_dir()
    stream: IO[bytes] | str | os.PathLike[str]
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise StudioError(
            f"the upload is not a readable zip file ({exc}); upload a .zip archive"
        ) from None
    with archive:
        entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        declared = 0
        for info in archive.infolist():
            parts = _entry_parts(info)
            if _is_symlink(info):
                raise StudioError(
                    f"zip entry {info.filename!r} is a symbolic link; refusing the archive"
                )
            if info.flag_bits & 0x1:
                raise StudioError(f"zip entry {info.filename!r} is encrypted; upload an unencrypted zip")
            if not parts or _is_junk(parts):
                continue
            entries.append((info, parts))
            if not info.is_dir():
                declared += info.file_size
        files = [(i, p) for i, p in entries if not i.is_dir()]
        if len(files) > max_files:
            raise StudioError(
                f"the zip holds {len(files):,} files, more than the limit of {max_files:,}; "
                "split it or use a local folder"
            )
        if declared > max_bytes:
            raise StudioError(
                f"the zip would unpack to {declared:,} bytes, more than the limit of {max_bytes:,}; "
                "use a local folder for data this large"
            )
        strip = _common_top_folder(entries)
        layout = {p[strip:] for _, p in files}
        if not any(len(p) >= 2 for p in layout):
            raise StudioError(
                "the zip has no class folders; zip a folder holding one sub-folder per class "
                "(e.g. daisy/1.jpg, roses/2.jpg)"
            )
        root.mkdir(parents=True, exist_ok=True)
        dest = _unique_dest(root, _safe_dataset_name(name))
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.import-", dir=root))
        tracker = ProgressTracker("import", declared, progress, unit="bytes")
        try:
            written = 0
            for info, parts in entries:
                rel = parts[strip:]
                if not rel:
                    continue
                target = tmp.joinpath(*rel)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = _extract_entry(archive, info, target, written, max_bytes, tracker)
            if tracker.total <= 0 or tracker.done < tracker.total:  # else already reported
                tracker.finish()
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _common_top_folder(entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> int:
    """1 when everything sits inside one top folder that itself holds folders, else 0."""
    tops = {p[0] for _, p in entries}
    if len(tops) != 1:
        return 0
    only = next(iter(tops))
    has_top_files = any(len(p) == 1 and not i.is_dir() for i, p in entries)
    holds_folders = any(len(p) >= 3 or (len(p) == 2 and i.is_dir()) for i, p in entries if p[0] == only)
    return 1 if not has_top_files and holds_folders else 0


def _extract_entry(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    written: int,
    max_bytes: int,
    tracker: ProgressTracker,
) -> int:
    entry_bytes = 0
    try:
        with archive.open(info) as src, target.open("wb") as dst:
            while chunk := src.read(_CHUNK):
                entry_bytes += len(chunk)
                written += len(chunk)
                # Declared sizes can lie; the counted bytes cannot.
                if entry_bytes > info.file_size or written > max_bytes:
                    raise StudioError(
                        f"zip entry {info.filename!r} inflates past its declared size or the "
                        f"{max_bytes:,}-byte limit (a zip bomb?); refusing the archive"
                    )
                dst.write(chunk)
                tracker.advance(len(chunk))
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise StudioError(
            f"zip entry {info.filename!r} could not be extracted ({exc}); the archive may be "
            "damaged; zip the folder again"
        ) from None
    return written


def _download(
    url: str,
    part: Path,
    *,
    expected_size: int | None,
    timeout: float,
    tracker_callback: ProgressCallback | None,
) -> None:
    """Fetch `url` into `part`, resuming from its current size with a Range request."""
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
        tracker = ProgressTracker("download", total or 0, tracker_callback, unit="bytes")
        tracker.done = have
        received = have
        try:
            with part.open(mode) as out:
                while chunk := response.read(_CHUNK):
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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_tgz(archive: Path, dest: Path, progress: ProgressCallback | None) -> None:
    """Extract the archive's single top folder into `dest`, atomically and safely."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
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
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise StudioError(
                f"{archive.name} could not be extracted ({exc}); delete it and download again"
            ) from None
        tops = [p for p in tmp.iterdir() if not p.name.startswith(".")]
        inner = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp
        if inner is tmp:
            final_tmp = tmp
        else:
            final_tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.ready-", dir=dest.parent))
            final_tmp.rmdir()
            os.replace(inner, final_tmp)
        os.replace(final_tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_flower_photos(
    *,
    url: str = FLOWER_PHOTOS_URL,
    sha256: str | None = FLOWER_PHOTOS_SHA256,
    dest_root: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    expected_size: int | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download and extract the codelab's flower_photos (3,670 photos, 218 MiB).

    The archive is fetched into `<dest_root>/flower_photos.tgz.part`; an
    interrupted download is resumed with an HTTP Range request the next time.
    A short download (fewer bytes than announced) is detected and kept for
    resuming; a checksum mismatch deletes the file. Once complete, the archive
    is extracted into a temporary folder and renamed to
    `<dest_root>/flower_photos`, then deleted. If that folder exists already,
    it is returned without downloading.

    Args:
        url: where to fetch it. Defaults to `FLOWER_PHOTOS_URL`.
        sha256: the expected SHA-256, or None to skip the check. Defaults to
            `FLOWER_PHOTOS_SHA256` (from TensorFlow Datasets' checksums).
        dest_root: the folder to put it in. Defaults to `engine.paths.datasets_dir()`.
        progress: called with `Progress` (phases "download", unit "bytes";
            then "extract", unit "files"). Defaults to None.
        expected_size: the archive's size in bytes, checked against what the
            server announces. Defaults to `FLOWER_PHOTOS_BYTES` for the default
            URL, else None.
        timeout: seconds to wait for the server. Defaults to 30.

    Returns:
        The dataset folder (`<dest_root>/flower_photos`).

    Raises:
        StudioError: the server is unreachable, the download is interrupted
            or short (run again to resume), the checksum does not match, or
            the archive cannot be extracted.
    """
    if not url.startswith(("http://", "https://", "file://")):
        raise StudioError(f"url={url!r} is not an http(s) or file URL")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"sha256={sha256!r} must be 64 hex digits or None")
    if expected_size is None and url == FLOWER_PHOTOS_URL:
        expected_size = FLOWER_PHOTOS_BYTES
    root = Path(dest_root).expanduser() if dest_root is not None else paths.datasets_dir()
    dest = root / FLOWER_PHOTOS_NAME
    if dest.is_dir():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    part = root / f"{FLOWER_PHOTOS_NAME}.tgz.part"
    _download(url, part, expected_size=expected_size, timeout=timeout, tracker_callback=progress)
    if sha256 is not None:
        actual = _sha256_file(part)
        if actual != sha256.lower():
            part.unlink(missing_ok=True)
            raise StudioError(
                f"the downloaded archive's SHA-256 is {actual}, expected {sha256.lower()}; the "
                "corrupt file was deleted; try again"
            )
    _extract_tgz(part, dest, progress)
    with contextlib.suppress(OSError):
        part.unlink()
    return dest
