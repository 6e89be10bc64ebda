"""Sweeping the temporary files and folders a killed process left behind.

Imports, downloads, atomic writes, exports and deletions all work in hidden
temporary entries that are renamed into place or removed when they finish. A
hard kill (SIGKILL, a power cut) leaves them behind, so `sweep_leftovers`,
called when the CLI and the dashboard start, removes the ones that are:

1. named by one of the studio's own temporary-name patterns (`PATTERNS`),
   in one of the places the studio puts them (the datasets, runs and cache
   folders, each run folder and its `export/`): nothing else is ever touched;
2. the right type for their pattern (a folder or a regular file; a symbolic
   link never is);
3. older than `STALE_AFTER_S` (their modification time); and
4. not held by a live process: a `engine.core.fsutil.temp_folder` is locked
   while it lives (`is_held`), and a run's `.deleting-RUN-PID-...` folder
   names its pid.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from engine.core import paths
from engine.core.fsutil import is_held
from engine.core.procs import process_alive

STALE_AFTER_S = 3600.0
_RANDOM = r"[a-z0-9_]{8}"  # tempfile.mkdtemp / mkstemp's random part
# (pattern, is a folder): every temporary name the studio makes.
PATTERNS = (
    (re.compile(rf"^\..+\.(?:import|extract|ready)-{_RANDOM}$"), True),  # imports, downloads
    (re.compile(rf"^\..+\.(?:tmp-|old\.){_RANDOM}$"), True),  # fsutil.atomic_path
    (re.compile(rf"^\..+\.{_RANDOM}$"), True),  # atomic_path before it named its folders tmp-
    (re.compile(r"^\.deleting-.+$"), True),  # deleting a run or a dataset
    (re.compile(rf"^\.export-{_RANDOM}$"), True),  # a run's export scratch folder
    (re.compile(rf"^\..+\.{_RANDOM}\.tmp$"), False),  # fsutil.atomic_write_bytes
)
_DELETING_PID = re.compile(r"^\.deleting-.+-(\d+)-\d+$")
_CACHE_DEPTH = 3
_log = logging.getLogger(__name__)


def _is_temp_name(name: str, is_dir: bool) -> bool:
    return any(folder == is_dir and pattern.match(name) for pattern, folder in PATTERNS)


def _held_by_named_pid(name: str) -> bool:
    match = _DELETING_PID.match(name)
    return bool(match) and process_alive(int(match.group(1)))


def _places() -> Iterator[Path]:
    """The folders whose direct entries may be studio temporaries."""
    yield paths.datasets_dir()
    runs = paths.runs_dir()
    yield runs
    for run in _subfolders(runs):
        yield run
        yield run / "export"
    cache = paths.cache_dir()
    level = [cache]
    for _ in range(_CACHE_DEPTH):
        yield from level
        level = [sub for folder in level for sub in _subfolders(folder)]


def _subfolders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as listing:
            return [
                Path(e.path)
                for e in listing
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []


def stale_leftovers(*, max_age_s: float = STALE_AFTER_S, now: float | None = None) -> list[Path]:
    """The studio temporaries `sweep_leftovers` would remove now (see the module docstring).

    Args:
        max_age_s: how old (by modification time) an entry must be. Defaults
            to `STALE_AFTER_S` (an hour).
        now: the current time (epoch seconds). Defaults to `time.time()`.

    Returns:
        Their paths.
    """
    cutoff = (time.time() if now is None else now) - max_age_s
    found = []
    for folder in _places():
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith("."):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            if not (is_dir or stat.S_ISREG(info.st_mode)) or not _is_temp_name(entry.name, is_dir):
                continue
            if info.st_mtime > cutoff or is_held(entry.path) or _held_by_named_pid(entry.name):
                continue
            found.append(Path(entry.path))
    return found


def sweep_leftovers(*, max_age_s: float = STALE_AFTER_S, now: float | None = None) -> list[Path]:
    """Remove the temporaries killed processes left in the studio's folders.

    Never raises: a sweep that cannot remove something leaves it and logs
    why, so it can never stop the app or a command from starting.

    Args:
        max_age_s: how old (by modification time) an entry must be. Defaults
            to `STALE_AFTER_S` (an hour).
        now: the current time (epoch seconds). Defaults to `time.time()`.

    Returns:
        The paths removed.
    """
    removed = []
    try:
        stale = stale_leftovers(max_age_s=max_age_s, now=now)
    except OSError as exc:  # a sweep must never stop a start
        _log.warning("leftover sweep skipped: %s", exc)
        return []
    for path in stale:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue  # another sweep got there first
        except OSError as exc:
            _log.warning("could not remove leftover %s: %s", path, exc)
            continue
        removed.append(path)
    if removed:
        _log.info("removed %d leftover temporary entries: %s", len(removed), removed)
    return removed
