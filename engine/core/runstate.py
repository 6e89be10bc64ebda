"""Run states, run ids and the times in a status file.

A run is `queued`, then `running`, then `done`, `failed` or `cancelled`; its
id is `YYYYmmdd-HHMMSS-<backbone>[-N]`, which is also its folder's name, so an
id is checked before it is ever joined to a path.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.core.errors import StudioError

RUN_STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
FINISHED_STATES = ("done", "failed", "cancelled")

# A backbone name becomes part of a folder name: keep it to a safe alphabet.
BACKBONE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
# A queued run without a pid younger than this is being launched, not abandoned.
LAUNCH_WINDOW_S = 120.0
# Run folders one second can hold (the -N suffix).
MAX_SAME_SECOND = 1000


def now_iso() -> str:
    """Now, as the ISO 8601 UTC text status files hold."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from a status file as an aware datetime (UTC if no zone), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def validate_run_id(run_id: Any) -> str:
    """Check that `run_id` is a run folder name (so it cannot point outside the runs folder).

    Args:
        run_id: the id to check, e.g. "20250101-120000-efficientnet_lite0".

    Returns:
        The id, unchanged.

    Raises:
        StudioError: if it is not a string of the form `YYYYmmdd-HHMMSS-<backbone>[-N]`.
    """
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise StudioError(
            f"run id {run_id!r} is not valid; a run id looks like "
            "'20250101-120000-efficientnet_lite0' (see `python -m engine runs`)"
        )
    return run_id


def recently_updated(status: dict[str, Any], within_s: float | None = None) -> bool:
    """Whether `status` was written less than `within_s` seconds ago.

    Args:
        status: a status dict (its `updated_at` is read).
        within_s: the window. Defaults to `LAUNCH_WINDOW_S`.

    Returns:
        True if `updated_at` is recent; False if older or missing.
    """
    window = LAUNCH_WINDOW_S if within_s is None else within_s
    updated = parse_time(status.get("updated_at"))
    return updated is not None and (datetime.now(UTC) - updated).total_seconds() < window


def new_run_folder(root: Path, backbone: str) -> Path:
    """Make a new, empty run folder `root/YYYYmmdd-HHMMSS-<backbone>[-N]` (`root` created if missing).

    The folder is created with an exclusive `mkdir`, so two runs started in the
    same second (even by two processes) get different folders.

    Raises:
        StudioError: if `backbone` is not a safe name, or no free name was found.
    """
    if not isinstance(backbone, str) or not BACKBONE_RE.match(backbone) or ".." in backbone:
        raise StudioError(
            f"backbone={backbone!r} cannot name a run folder; use letters, digits, "
            "'_', '-' and '.' (e.g. 'efficientnet_lite0')"
        )
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{backbone}"
    for n in range(1, MAX_SAME_SECOND + 1):
        name = base if n == 1 else f"{base}-{n}"
        try:
            (root / name).mkdir()
        except FileExistsError:
            continue
        return root / name
    raise StudioError(
        f"could not find a free run folder name for {base!r} in {root}; wait a second and try again"
    )
