"""A JSON cache file of entries by relative path: read whole or not at all, written atomically.

The scan cache (`engine.data.scan_cache`) and the perceptual hash cache
(`engine.data.phash`) are both one JSON object per dataset folder holding a
version, the folder and a dict of entries. `load_entries` gives the entries
when the file is theirs and whole: {} when it is missing or unreadable, or
another version's or folder's (it is then simply replaced); a damaged one
(not JSON, not an object, malformed entries) is moved aside
(`engine.core.heal`) and rebuilt. Neither a read nor a write failing is ever
fatal: a cache only saves time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.core import heal
from engine.core.fsutil import atomic_write_text


def load_entries(
    path: Path,
    *,
    what: str,
    key: str,
    header: Mapping[str, Any],
    valid: Callable[[Any], bool],
) -> dict[str, Any]:
    """The entries under `key` of the cache at `path`, or {} when there is none to use.

    Args:
        path: the cache file.
        what: its name in the healing record ("the scan cache").
        key: the entries' key in the JSON object.
        header: the values the file must hold to be this cache's (version, folder, ...);
            any other value means another version's or folder's file: {} without healing.
        valid: whether one entry is well formed; one malformed entry makes the file damaged.
    """
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except OSError:
        return {}  # unreadable (permissions): the work goes on without it
    except ValueError as exc:
        return _damaged(path, what, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return _damaged(path, what, f"a JSON {type(data).__name__}, not an object")
    if any(data.get(name) != value for name, value in header.items()):
        return {}
    entries = data.get(key)
    if not isinstance(entries, dict) or not all(valid(e) for e in entries.values()):
        return _damaged(path, what, "its entries are malformed")
    return entries


def save_entries(path: Path, payload: Mapping[str, Any]) -> None:
    """Write the cache's JSON object to `path` atomically; a read-only cache is skipped."""
    try:
        atomic_write_text(path, json.dumps(payload, separators=(",", ":")))
    except OSError:
        pass  # a read-only cache only costs time next run


def _damaged(path: Path, what: str, reason: str) -> dict[str, Any]:
    try:
        heal.move_aside(path, what=what, reason=reason[:200])
    except OSError:
        pass  # a read-only cache folder: the work still goes on without the cache
    return {}
