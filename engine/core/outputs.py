"""Files the studio writes where a user points it (`--output_graph`, `--output_labels`, a CSV).

A user names a path; the studio writes there only when that cannot lose
anything:

- a folder is never replaced (writing a model over a folder would delete it);
- nothing is written inside a folder the caller protects (the dataset);
- an existing file is replaced only when the studio wrote it: when a write
  finishes, its path and SHA-256 are recorded in `<home>/outputs.json`, and a
  file whose bytes still match that record may be replaced (the codelab runs
  `retrain` again and again into the same `tf_files/retrained_graph.pb`);
  any other file is refused.

Every write is atomic (a temporary file renamed into place), so a failed
write leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.core import fsutil, paths
from engine.core.errors import StudioError

RECORD_FILE = "outputs.json"
_LOCK_FILE = "outputs.lock"


def _record_path() -> Path:
    return paths.home_dir() / RECORD_FILE


def _records() -> dict[str, str]:
    data = fsutil.read_json_dict(_record_path())
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _outside(
    path: str | os.PathLike[str], what: str, protected: Iterable[str | os.PathLike[str]]
) -> Path:
    """`path` resolved, refused when it lies in one of the `protected` folders."""
    target = Path(path).expanduser().resolve()
    for root in protected:
        folder = Path(root).expanduser().resolve()
        if target == folder or folder in target.parents:
            raise StudioError(
                f"{what}={str(path)!r} is inside {folder}, which must not be changed (it is the "
                "dataset); choose a path outside it"
            )
    return target


def owned(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a file the studio wrote and nobody changed since.

    Args:
        path: the file.

    Returns:
        True when its SHA-256 matches the one recorded when the studio wrote it.
    """
    target = Path(path).expanduser().resolve()
    expected = _records().get(str(target))
    if expected is None or not target.is_file():
        return False
    try:
        return fsutil.sha256_file(target) == expected
    except OSError:
        return False


def check_output(
    path: str | os.PathLike[str], *, what: str, protected: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Check that the studio may write the file `path`; return it resolved.

    Args:
        path: where the user asked the file to go.
        what: the flag or field that named it (`--output_graph`), for the message.
        protected: folders nothing may be written into (the dataset). Defaults to ().

    Returns:
        The absolute path.

    Raises:
        StudioError: `path` is a folder, lies inside a protected folder, or is an
            existing file the studio did not write.
    """
    target = _outside(path, what, protected)
    if target.is_dir():
        raise StudioError(
            f"{what}={str(path)!r} is a folder; give a file path (the studio never replaces a "
            "folder, so nothing in it is lost)"
        )
    if target.exists() and not owned(target):
        raise StudioError(
            f"{what}={str(path)!r} exists and was not written by Retrain Studio (or was changed "
            "since); choose another path, or move that file away yourself"
        )
    return target


def check_output_folder(
    path: str | os.PathLike[str], *, what: str, protected: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Check that the studio may create the new folder `path` (it must not exist yet).

    Args:
        path: the folder to create.
        what: the flag that named it, for the message.
        protected: folders nothing may be written into. Defaults to ().

    Returns:
        The absolute path.

    Raises:
        StudioError: it exists, or lies inside a protected folder, or its parent is a file.
    """
    target = _outside(path, what, protected)
    if target.exists() or target.is_symlink():
        raise StudioError(f"{what}: {target} exists already; the studio only creates new folders")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StudioError(f"{what}={str(path)!r}: {parent} is a file, not a folder")
            break
    return target


def _remember(target: Path) -> None:
    with fsutil.file_lock(paths.home_dir() / _LOCK_FILE):
        records = _records()
        records[str(target)] = fsutil.sha256_file(target)
        # forget files that are gone, so the record stays small
        records = {p: h for p, h in records.items() if Path(p).is_file()}
        fsutil.atomic_write_text(_record_path(), json.dumps(records, indent=1, sort_keys=True) + "\n")


def write_output_bytes(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    what: str,
    protected: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write `data` to the user-chosen file `path` when `check_output` allows it, atomically.

    Args:
        path: the file.
        data: its bytes.
        what: the flag that named it, for messages.
        protected: folders nothing may be written into. Defaults to ().

    Returns:
        The absolute path written.

    Raises:
        StudioError: as `check_output`.
    """
    target = check_output(path, what=what, protected=protected)
    fsutil.atomic_write_bytes(target, data)
    _remember(target)
    return target


@contextlib.contextmanager
def output_path(
    path: str | os.PathLike[str], *, what: str, protected: Iterable[str | os.PathLike[str]] = ()
) -> Iterator[Path]:
    """A temporary path to write the user-chosen file `path` to; renamed into place at the end.

    Args:
        path: the file.
        what: the flag that named it, for messages.
        protected: folders nothing may be written into. Defaults to ().

    Yields:
        The temporary path (same folder, same suffix).

    Raises:
        StudioError: as `check_output` (before anything is written).
    """
    target = check_output(path, what=what, protected=protected)
    with fsutil.atomic_path(target) as tmp:
        yield tmp
    _remember(target)
