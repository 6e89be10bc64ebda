"""Atomic file writes and the one file lock.

Everything the engine writes that another process may read (status, config,
reports, models, caches) goes through these helpers: the data is written to a
temporary file in the same folder, flushed to disk, then renamed over the
target with `os.replace`, which is atomic on POSIX and Windows.

Files and folders come out with the modes the process umask gives (0644 and
0755 with the usual umask), as `open` and `mkdir` would make them, so a
teammate, a TensorBoard or a web server running as another user can read a
shared runs folder; the temporary files `tempfile` makes are 0600 until then.

`file_lock` serialises read-modify-write sequences (a run's status.json, the
job launcher, the TensorBoard registry) across threads and processes.

`temp_folder` makes the hidden working folders (an import being unpacked, a
folder being replaced or deleted) and holds a lock on each while it lives, so
`engine.core.leftovers` can tell one a live process is using (`is_held`) from
one a killed process left behind.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.core.errors import StudioError

try:  # POSIX only; elsewhere the lock only serialises the threads of one process.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

_umask_guard = threading.Lock()
_held = threading.local()
_thread_locks: dict[str, threading.RLock] = {}
_thread_locks_guard = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Returns:
        The umask bits (e.g. 0o022).
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_guard:  # os.umask can only be read by setting it: keep the window short
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike[str]) -> None:
    """Give a file 0666, or a folder 0777, less the umask: what `open`/`mkdir` would have made.

    For what `tempfile` created (0600 files, 0700 folders) and is now renamed into place.

    Args:
        path: the file or folder (not followed when it is a symbolic link).
    """
    target = Path(path)
    if target.is_symlink():
        return
    full = 0o777 if target.is_dir() else 0o666
    os.chmod(target, full & ~current_umask())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically.

    Args:
        path: the target file; its folder is created if missing.
        data: the bytes to write.

    Returns:
        The target path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically. See `atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(
    path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Path:
    """Write `rows` as CSV with a header of `columns` to `path` atomically.

    A row's keys outside `columns` are left out; a missing or None value is an
    empty cell. See `atomic_write_bytes`.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row.get(k) is None else row[k]) for k in columns} for row in rows)
    return atomic_write_text(path, buffer.getvalue())


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as indented JSON to `path` atomically. See `atomic_write_bytes`."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def temp_folder(prefix: str, parent: str | os.PathLike[str]) -> Iterator[Path]:
    """A new temporary folder in `parent`, held while the block runs, then removed.

    The folder is held with a shared `flock` on its descriptor, which the
    kernel releases when the process dies, so `is_held` tells a live
    process's folder from a killed one's. Whatever is still at the folder's
    path when the block ends is removed; a folder renamed into place inside
    the block is therefore kept.

    Args:
        prefix: the start of the folder's name; a hidden, recognisable one
            such as ".flowers.import-" (8 random characters follow).
        parent: where to make it; created if missing.

    Yields:
        The folder.
    """
    where = Path(parent)
    where.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
    fd = os.open(path, os.O_RDONLY)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def is_held(path: str | os.PathLike[str]) -> bool:
    """Whether a live process holds `path` (a `temp_folder`, or a file it locks).

    Args:
        path: a folder or file; a symbolic link is never followed.

    Returns:
        True while some process (this one included) holds a lock on it; False
        when nobody does, or when it cannot be opened (missing, a link).
    """
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also releases the lock taken just now
    return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, replace_folder: bool = False) -> Iterator[Path]:
    """Give a temporary path to write to; rename it over `path` if the block succeeds.

    For writers that insist on a file name of their own (Keras `model.save`,
    the TFLite converter, `zipfile`). The temporary name keeps the target's
    suffix, since some writers check it. On error the temporary file or folder
    is removed and `path` is untouched. The work happens in a `temp_folder`
    (`.NAME.tmp-XXXXXXXX`; a replaced folder goes through `.NAME.old.XXXXXXXX`).

    Args:
        path: the final file or folder.
        replace_folder: allow replacing an existing folder (only for folders the
            studio made itself, such as a run's `export/saved_model`). Defaults to
            False: an existing folder is refused before anything is written.

    Yields:
        The temporary path, in the same folder as `path`.

    Raises:
        StudioError: `path` is an existing folder and `replace_folder` is False.
    """
    target = Path(path)
    if not replace_folder and target.is_dir() and not target.is_symlink():
        raise StudioError(
            f"{target} is a folder; refusing to replace it (the studio replaces only files and "
            "folders it made)"
        )
    with temp_folder(f".{target.name}.tmp-", target.parent) as tmp_dir:
        tmp = tmp_dir / target.name
        yield tmp
        if target.is_dir() and not target.is_symlink():
            # os.replace cannot put a folder over a non-empty folder: move the
            # old one aside first, then drop it once the new one is in place.
            with temp_folder(f".{target.name}.old.", target.parent) as old:
                os.replace(target, old / target.name)
                os.replace(tmp, target)
        else:
            os.replace(tmp, target)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB slices (memory stays flat).

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_dict(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on `path` across threads and processes; re-entrant per thread.

    An existing folder is locked as it is (nothing is added to it); any other
    path is a lock file, created if missing. The lock is released when the
    block ends, and also if the process dies, so a crash never leaves it held.

    Args:
        path: a folder, or the lock file.

    Yields:
        None, while the lock is held.
    """
    target = Path(path)
    key = str(target.resolve() if target.exists() else target.absolute())
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if key in held:  # this thread holds it already
        yield
        return
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(key, threading.RLock())
    with thread_lock:
        if fcntl is None:
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)
            return
        if target.is_dir():
            fd = os.open(target, os.O_RDONLY)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)
        finally:
            os.close(fd)  # closing releases the lock
