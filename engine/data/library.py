"""The studio's own datasets: the demo, imported zips and downloads in the datasets folder.

Every folder the studio makes there carries a small manifest,
`.retrain-studio-dataset.json` (hidden, so the scan never sees it), written
inside the temporary folder before it is renamed into place. That manifest is
the only thing that lets `delete_dataset` delete a folder: a folder without
one, a symbolic link, or anything outside the datasets folder is refused, so
a user's own photos are never deleted even if they sit beside the studio's.

Imports share a quota (`engine.core.limits.IMPORT_QUOTA_BYTES`): the bytes of
the finished imports plus those reserved by imports still unpacking (their
`temp_folder` is held by a live process). Choosing a new dataset's name,
reserving quota and deleting happen under a `file_lock` on the datasets
folder itself, so two sessions never race.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core import paths
from engine.core.errors import StudioError
from engine.core.fsutil import atomic_write_json, file_lock, is_held, temp_folder
from engine.core.limits import IMPORT_QUOTA_BYTES

MANIFEST_NAME = ".retrain-studio-dataset.json"
KINDS = ("demo", "import", "download")
IMPORT_MARK = ".import-"
_MANIFEST_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class StoredDataset:
    """One dataset the studio made, as `list_datasets` finds it.

    Args:
        name: the folder's name (what `delete_dataset` takes).
        path: the folder.
        kind: "demo", "import" or "download".
        size_bytes: the bytes of its files when it was made.
        files: how many files it held when it was made.
        created: when it was made (ISO 8601, UTC).
        source: where it came from (the zip's name, the URL), if known.
    """

    name: str
    path: Path
    kind: str
    size_bytes: int
    files: int
    created: str
    source: str | None = None


def _root(root: str | os.PathLike[str] | None) -> Path:
    return Path(root).expanduser() if root is not None else paths.datasets_dir()


def _regular_files(folder: Path) -> Iterator[os.stat_result]:
    """`lstat` of every regular file below `folder` but manifests (links are neither followed nor counted)."""
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as listing:
                for entry in listing:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False) and entry.name != MANIFEST_NAME:
                        yield entry.stat(follow_symlinks=False)
        except OSError:
            continue


def folder_usage(folder: str | os.PathLike[str]) -> tuple[int, int]:
    """The bytes and the number of regular files below `folder`, the studio's manifest left out.

    Args:
        folder: a folder; symbolic links inside are not followed.

    Returns:
        (bytes, files).
    """
    size = files = 0
    for info in _regular_files(Path(folder)):
        size += info.st_size
        files += 1
    return size, files


def write_manifest(
    folder: str | os.PathLike[str], kind: str, *, source: str | None = None, **extra: Any
) -> Path:
    """Mark `folder` as a dataset the studio made, counting its files now.

    Call it on the complete folder, before it is renamed into place.

    Args:
        folder: the dataset folder (usually still its temporary folder).
        kind: "demo", "import" or "download".
        source: where it came from (a zip's name, a URL). Defaults to None.
        **extra: more JSON-able facts to record.

    Returns:
        The manifest's path.

    Raises:
        ValueError: `kind` is not one of `KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} must be one of {', '.join(KINDS)}")
    target = Path(folder)
    size, files = folder_usage(target)
    manifest = {
        "made_by": "retrain-studio",
        "kind": kind,
        "source": source,
        "size_bytes": size,
        "files": files,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }
    return atomic_write_json(target / MANIFEST_NAME, manifest)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A studio dataset's manifest, or None when `folder` is not one the studio made.

    Args:
        folder: a folder.

    Returns:
        The manifest, or None when it is missing, a link, not a small regular
        file, not JSON, or not a studio manifest.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MANIFEST_MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("made_by") != "retrain-studio":
        return None
    return data if data.get("kind") in KINDS else None


def _stored(path: Path, manifest: dict[str, Any]) -> StoredDataset:
    def number(key: str) -> int:
        value = manifest.get(key)
        return value if isinstance(value, int) and value >= 0 else 0

    source = manifest.get("source")
    return StoredDataset(
        name=path.name,
        path=path,
        kind=str(manifest["kind"]),
        size_bytes=number("size_bytes"),
        files=number("files"),
        created=str(manifest.get("created", "")),
        source=str(source) if source is not None else None,
    )


def list_datasets(root: str | os.PathLike[str] | None = None) -> list[StoredDataset]:
    """The datasets the studio made in the datasets folder, newest first.

    Args:
        root: the datasets folder. Defaults to `engine.core.paths.datasets_dir()`.

    Returns:
        One `StoredDataset` per folder carrying the studio's manifest; other
        folders, hidden ones and links are left out.
    """
    folder = _root(root)
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        manifest = read_manifest(entry.path)
        if manifest is not None:
            found.append(_stored(Path(entry.path), manifest))
    return sorted(found, key=lambda d: (d.created, d.name), reverse=True)


def _check_name(name: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or any(c in name for c in "/\\\x00")
    ):
        raise StudioError(
            f"{name!r} is not a dataset name; give a folder name from `python -m engine datasets`"
        )


def delete_dataset(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Delete one dataset the studio made, and nothing else.

    The folder must sit directly in the datasets folder, be a real folder (not
    a link) and carry the studio's manifest. It is renamed to a hidden
    `.deleting-NAME-XXXXXXXX` folder first (checked again there), so it
    disappears at once and a half-deleted dataset is never listed; a crash
    mid-way leaves only that hidden folder, which `engine.core.leftovers`
    removes later.

    Args:
        name: the dataset's folder name (see `list_datasets`).
        root: the datasets folder. Defaults to `engine.core.paths.datasets_dir()`.

    Returns:
        The path that was deleted.

    Raises:
        StudioError: a malformed name, no such folder, a symbolic link, or a
            folder the studio did not make.
    """
    _check_name(name)
    folder = _root(root)
    path = folder / name
    if path.is_symlink():
        raise StudioError(
            f"dataset {name!r} is a symbolic link, not a folder the studio made; not deleting it"
        )
    if not path.is_dir():
        raise StudioError(
            f"no dataset {name!r} in the datasets folder; list them with `python -m engine datasets`"
        )
    if read_manifest(path) is None:
        raise StudioError(
            f"{name!r} was not made by Retrain Studio (it has no {MANIFEST_NAME}); the studio "
            "deletes only the datasets it generated, imported or downloaded; delete it yourself "
            "if you want it gone"
        )
    with file_lock(folder), temp_folder(f".deleting-{name[:60]}-", folder) as trash:
        moved = trash / "dataset"
        os.replace(path, moved)
        if moved.is_symlink() or read_manifest(moved) is None:  # swapped under us: put it back
            os.replace(moved, path)
            raise StudioError(f"{name!r} changed while being deleted; not deleting it")
    return path


def import_usage(root: str | os.PathLike[str] | None = None) -> int:
    """Bytes the imports in the datasets folder take, counting those still unpacking.

    Args:
        root: the datasets folder. Defaults to `engine.core.paths.datasets_dir()`.

    Returns:
        The finished imports' recorded sizes plus the bytes reserved by the
        imports a live process is unpacking right now.
    """
    folder = _root(root)
    used = sum(d.size_bytes for d in list_datasets(folder) if d.kind == "import")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return used
    for entry in entries:
        if IMPORT_MARK in entry.name and entry.name.startswith(".") and is_held(entry.path):
            reserved = _read_reservation(Path(entry.path))
            used += reserved
    return used


def _read_reservation(folder: Path) -> int:
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    value = data.get("reserved_bytes") if isinstance(data, dict) else None
    return value if isinstance(value, int) and value > 0 else 0


def reserve_import(folder: Path, incoming_bytes: int, *, root: Path) -> None:
    """Check the import quota for `incoming_bytes` more and reserve them in `folder`.

    Call it holding the datasets folder's lock (`file_lock(root)`), with `folder`
    the import's held `temp_folder`, so two imports at once cannot both slip
    under the quota.

    Args:
        folder: the import's temporary folder.
        incoming_bytes: the bytes the import will write.
        root: the datasets folder.

    Raises:
        StudioError: the imports would then take more than the quota.
    """
    quota = IMPORT_QUOTA_BYTES.value()
    used = import_usage(root)
    if used + incoming_bytes > quota:
        raise StudioError(
            f"importing {incoming_bytes:,} more bytes would bring the imported datasets to "
            f"{used + incoming_bytes:,} bytes, over the quota of {quota:,} ({IMPORT_QUOTA_BYTES.env}); "
            "delete datasets you no longer need (Dataset page, or `python -m engine datasets "
            "--delete NAME`), then import again"
        )
    atomic_write_json(folder / MANIFEST_NAME, {"reserved_bytes": incoming_bytes})
