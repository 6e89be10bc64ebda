"""A dataset's review kept beside its journal, so it survives a reload, a restart and a new browser.

`<studio home>/edits/<dataset key>/review.json` holds the last review of a
dataset with its *stamp*: the dataset's fingerprint (every photo's path and
content hash, `engine.data.dataset.Dataset.fingerprint`), the split, the
backbone and the near-duplicate settings. A stored review is used only while
its stamp matches: moving, adding, removing or changing any photo changes the
fingerprint, so the review is redone. The photos marked *keep* are filtered
out when it is read (`engine.data.edits.kept`), so a keep needs no new review.
A file that is damaged, of another version or of another stamp is ignored
and replaced; one that cannot be written only costs a review next time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from engine.core.fsutil import atomic_write_text
from engine.data.edit_journal import edits_dir
from engine.train.review.report import Finding, Review

STORE_VERSION = 1


def store_file(
    root: str | os.PathLike[str], *, studio_home: str | os.PathLike[str] | None = None
) -> Path:
    """Where the review of dataset `root` is kept."""
    return edits_dir(Path(root).expanduser().resolve(), studio_home=studio_home) / "review.json"


def save(
    root: str | os.PathLike[str],
    review: Review,
    stamp: dict[str, Any],
    *,
    studio_home: str | os.PathLike[str] | None = None,
) -> None:
    """Keep `review` (every finding, none hidden) with its `stamp`, atomically."""
    payload = {
        "version": STORE_VERSION,
        "stamp": stamp,
        "image_count": review.image_count,
        "folders": review.folders,
        "leak": review.leak,
        "seconds": review.seconds,
        "skipped": [list(s) for s in review.skipped],
        "findings": [dataclasses.asdict(f) for f in review.findings],
    }
    try:
        atomic_write_text(store_file(root, studio_home=studio_home), json.dumps(payload))
    except OSError:
        pass  # a read-only home: the next visit reviews again


def load(
    root: str | os.PathLike[str],
    stamp: dict[str, Any],
    *,
    studio_home: str | os.PathLike[str] | None = None,
) -> Review | None:
    """The kept review of `root` if its stamp is `stamp`, else None."""
    try:
        data = json.loads(store_file(root, studio_home=studio_home).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
        return None
    if data.get("stamp") != json.loads(json.dumps(stamp)):
        return None
    try:
        findings = [
            Finding(**{**f, "neighbours": tuple(f.get("neighbours", ()))}) for f in data["findings"]
        ]
        return Review(
            findings,
            int(data["image_count"]),
            folders=dict(data["folders"]),
            leak=dict(data["leak"]),
            seconds=dict(data["seconds"]),
            skipped=[(str(a), str(b)) for a, b in data["skipped"]],
        )
    except (KeyError, TypeError, ValueError):
        return None  # a damaged or hand-edited file: reviewed again and replaced
