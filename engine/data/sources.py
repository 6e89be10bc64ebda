"""Getting a dataset in from a local folder or an uploaded zip.

A local folder is only checked (and kept within `RETRAIN_STUDIO_DATA_ROOTS`
when that is set). A zip is checked whole before a byte is written (entry
count, names, sizes, layout; see `import_zip`), extracted into a held
temporary folder beside its destination and renamed into place at the end,
so a failed import leaves nothing behind and a killed one leaves only a
hidden folder that `engine.core.leftovers` sweeps.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from engine.core import paths
from engine.core.errors import StudioError
from engine.core.fsutil import file_lock, honour_umask, temp_folder
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.data.library import IMPORT_MARK, MANIFEST_NAME, reserve_import, write_manifest
from engine.data.zipcount import check_entry_count

# Zip limits: generous for a photo dataset, far below a zip bomb.
MAX_ZIP_FILES = 50_000
MAX_ZIP_BYTES = 4 * 1024**3
# A class folder, a few folders of its own, and the photo: far below this.
MAX_ZIP_DEPTH = 16
# The longest file or folder name ext4, APFS and NTFS take, in bytes.
MAX_NAME_BYTES = 255
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
    """The entry's path parts, refusing anything that could escape the target or not fit on disk."""
    raw = info.filename
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise StudioError(f"zip entry {raw!r} has an absolute path; refusing the whole archive")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise StudioError(f"zip entry {raw!r} points outside the archive ('..'); refusing it")
    if "\x00" in name:
        raise StudioError(f"zip entry {raw!r} has a NUL character; refusing the archive")
    if len(parts) > MAX_ZIP_DEPTH:
        raise StudioError(
            f"zip entry {raw!r} is nested {len(parts)} levels deep, more than {MAX_ZIP_DEPTH}; "
            "zip a folder holding one sub-folder per class"
        )
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise StudioError(
                f"zip entry {raw[:80]!r}... has a name of {len(part.encode('utf-8', 'surrogateescape'))} "
                f"bytes; file and folder names are limited to {MAX_NAME_BYTES} bytes; shorten it "
                "and zip again"
            )
    return parts


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p.lower() in _JUNK_PARTS or p.startswith("._") for p in parts)


def _open_zip(source: str | os.PathLike[str] | bytes | IO[bytes]) -> tuple[IO[bytes], bool]:
    """The zip as a seekable binary stream, and whether we opened it (and so close it)."""
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source), True
    if not isinstance(source, str | os.PathLike):
        return source, False
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO's open would block
            raise StudioError(f"{os.fspath(source)!r} is not a regular file; give a .zip file")
        return open(source, "rb"), True  # closed by import_zip
    except OSError as exc:
        raise StudioError(
            f"cannot read {os.fspath(source)!r} ({exc.strerror or exc}); give a readable .zip file"
        ) from None


def _plan(
    archive: zipfile.ZipFile, max_files: int, max_bytes: int
) -> tuple[list[tuple[zipfile.ZipInfo, tuple[str, ...]]], int, int]:
    """The entries to extract, their declared bytes, and the top folder to strip (0 or 1)."""
    entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    declared = 0
    for info in archive.infolist():
        parts = _entry_parts(info)
        if _is_symlink(info):
            raise StudioError(f"zip entry {info.filename!r} is a symbolic link; refusing the archive")
        if info.flag_bits & 0x1:
            raise StudioError(f"zip entry {info.filename!r} is encrypted; upload an unencrypted zip")
        if not parts or _is_junk(parts):
            continue
        entries.append((info, parts))
        if not info.is_dir():
            declared += info.file_size
    strip = _common_top_folder(entries)
    files = {p[strip:] for i, p in entries if not i.is_dir() and p[strip:]}
    folders = {p[strip:] for i, p in entries if i.is_dir() and p[strip:]}
    folders |= {rel[:n] for rel in files | folders for n in range(1, len(rel))}
    if len(files) + len(folders) > max_files:
        raise StudioError(
            f"the zip holds {len(files):,} files in {len(folders):,} folders, more than the limit "
            f"of {max_files:,} entries (files and folders together); split it or use a local folder"
        )
    clash = sorted(files & folders)
    if clash:
        raise StudioError(
            f"the zip holds {'/'.join(clash[0])!r} both as a file and as a folder; rename one of "
            "them and zip again"
        )
    if declared > max_bytes:
        raise StudioError(
            f"the zip would unpack to {declared:,} bytes, more than the limit of {max_bytes:,}; "
            "use a local folder for data this large"
        )
    if not any(len(p) >= 2 for p in files):
        raise StudioError(
            "the zip has no class folders; zip a folder holding one sub-folder per class "
            "(e.g. daisy/1.jpg, roses/2.jpg)"
        )
    return entries, declared, strip


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
    symbolic link or is encrypted, has a name over 255 bytes, is both a file
    and a folder, or when the archive holds more than `max_files` entries
    (files and folders, implied ones included) or declares more than
    `max_bytes` uncompressed bytes. The entry count is read from the end of
    central directory record and counted cheaply before `zipfile` parses a
    single entry. Bytes are also counted while extracting, so an entry that
    inflates past its declared size is caught too. `__MACOSX` and `._*`
    entries are skipped. The imports together stay within
    `engine.core.limits.IMPORT_QUOTA_BYTES`. The new folder carries the
    studio's manifest (`engine.data.library`), so it can be listed and deleted.

    Args:
        source: the zip as a path, bytes, or a binary file object (an upload).
        dest_root: the folder to create the dataset in. Defaults to
            `engine.core.paths.datasets_dir()`.
        name: the new folder's name (made safe; "-2", "-3" added if taken).
            Defaults to the zip's file name without ".zip", else "upload".
        progress: called with `Progress` (phase "import", unit "bytes").
            Defaults to None.
        max_files: most entries (files and folders) accepted. Defaults to
            `MAX_ZIP_FILES`.
        max_bytes: most uncompressed bytes accepted. Defaults to `MAX_ZIP_BYTES`.

    Returns:
        The new dataset folder.

    Raises:
        StudioError: not a zip, unsafe or too large, over the import quota, no
            class folders in it, or it cannot be written (the disk is full).
    """
    if max_files <= 0 or max_bytes <= 0:
        raise ValueError(f"max_files={max_files!r} and max_bytes={max_bytes!r} must be positive")
    source_name = source if isinstance(source, str | os.PathLike) else getattr(source, "name", None)
    if name is None:
        name = Path(os.fspath(source_name)).stem if source_name else "upload"
    root = Path(dest_root).expanduser() if dest_root is not None else paths.datasets_dir()
    stream, owned = _open_zip(source)
    try:
        check_entry_count(stream, max_files)
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise StudioError(
                f"the upload is not a readable zip file ({exc}); upload a .zip archive"
            ) from None
        with archive:
            entries, declared, strip = _plan(archive, max_files, max_bytes)
            safe = _safe_dataset_name(name)
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StudioError(
                    f"cannot create the datasets folder ({exc.strerror or exc}); check its permissions"
                ) from None
            with temp_folder(f".{safe}{IMPORT_MARK}", root) as tmp:
                with file_lock(root):
                    reserve_import(tmp, declared, root=root)
                _extract_all(archive, entries, strip, tmp, declared, max_bytes, progress)
                label = Path(os.fspath(source_name)).name if source_name else None
                write_manifest(tmp, "import", source=label)
                with file_lock(root):
                    dest = _unique_dest(root, safe)
                    os.replace(tmp, dest)
                    honour_umask(dest)  # mkdtemp made it 0700
    finally:
        if owned:
            stream.close()
    return dest


def _extract_all(
    archive: zipfile.ZipFile,
    entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    strip: int,
    tmp: Path,
    declared: int,
    max_bytes: int,
    progress: ProgressCallback | None,
) -> None:
    tracker = ProgressTracker("import", declared, progress, unit="bytes")
    written = 0
    for info, parts in entries:
        rel = parts[strip:]
        if not rel or rel == (MANIFEST_NAME,):
            continue
        target = tmp.joinpath(*rel)
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudioError(
                f"zip entry {info.filename!r} could not be written ({exc.strerror or exc}); "
                "nothing was imported"
            ) from None
        written = _extract_entry(archive, info, target, written, max_bytes, tracker)
    if tracker.total <= 0 or tracker.done < tracker.total:  # else already reported
        tracker.finish()


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
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise StudioError(
            f"zip entry {info.filename!r} could not be extracted ({exc}); the archive may be "
            "damaged; zip the folder again"
        ) from None
    except OSError as exc:
        raise StudioError(
            f"zip entry {info.filename!r} could not be written ({exc.strerror or exc}); "
            "nothing was imported"
        ) from None
    return written
