"""The scan cache: each file's check result, reused while its size and modification time hold.

One JSON file per dataset folder under `cache_dir()/scan`, written atomically
after a scan that checked anything new. An entry is `[size, mtime_ns, result]`
where result is `["ok", sha256, width, height, format, size]` or
`["bad", kind, reason]`. A cache of another version, folder or minimum side is
simply replaced; a damaged one (not JSON, not an object, malformed entries) is
moved aside (`engine.core.heal`) and rebuilt by the scan
(`engine.data.json_cache`). A cache that cannot be read or written only costs speed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from engine.core import paths
from engine.data.images import MIN_SIDE
from engine.data.json_cache import load_entries, save_entries

SCAN_CACHE_VERSION = 1


def cache_file(root: Path) -> Path:
    """Where the scan cache of dataset folder `root` (resolved) lives."""
    key = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:20]
    return paths.cache_dir() / "scan" / f"{key}.json"


def load(root: Path) -> dict[str, list[Any]]:
    """The cached entries of an earlier scan of `root`, by path relative to it.

    Args:
        root: the resolved dataset folder.

    Returns:
        The entries; {} when there is no usable cache (a damaged one is moved aside).
    """
    return load_entries(
        cache_file(root),
        what="the scan cache",
        key="entries",
        header={"version": SCAN_CACHE_VERSION, "root": str(root), "min_side": MIN_SIDE},
        valid=_valid_entry,
    )


def save(root: Path, entries: dict[str, list[Any]]) -> None:
    """Write the entries of a scan of `root` (atomically; a read-only cache is skipped).

    Args:
        root: the resolved dataset folder.
        entries: by path relative to `root`, as `load` returns them.
    """
    payload = {
        "version": SCAN_CACHE_VERSION,
        "root": str(root),
        "min_side": MIN_SIDE,
        "entries": entries,
    }
    save_entries(cache_file(root), payload)


def _valid_entry(entry: Any) -> bool:
    """Whether `entry` is `[size, mtime_ns, ["ok", sha, w, h, fmt, size] | ["bad", kind, reason]]`."""
    if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], list)):
        return False
    size, mtime, result = entry
    if type(size) is not int or type(mtime) is not int or not result:
        return False
    if result[0] == "ok":
        return (
            len(result) == 6
            and isinstance(result[1], str)
            and all(type(v) is int for v in (result[2], result[3], result[5]))
            and isinstance(result[4], str)
        )
    return result[0] == "bad" and len(result) == 3 and all(isinstance(v, str) for v in result[1:])
