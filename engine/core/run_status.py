"""A run's `status.json`: read, merged and written again under the run folder's lock.

The job launcher and the trainer both update a run's status, so every update
is a read-merge-write under an exclusive lock on the run folder
(`engine.core.fsutil.file_lock`), written atomically. The times are set the
first time they apply (`created_at`, `started_at` on "running", `ended_at` on a
finished state; `updated_at` always), and a `pid` is recorded with its
process's start time so that a recycled pid is never mistaken for the run's
process. A file that is not a JSON object is moved aside and rebuilt; the
caller records the damage (`engine.core.rundir.RunDir`).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from engine.core import fsutil, heal
from engine.core.procs import process_start_ticks
from engine.core.runstate import FINISHED_STATES, now_iso


def merge_status(
    folder: Path,
    status_path: Path,
    run_id: str,
    state: str | None,
    if_state: Collection[str] | None,
    fields: dict[str, Any],
    warning: str | None = None,
) -> tuple[dict[str, Any] | None, heal.Damage | None]:
    """Merge `fields` (and `state`, and a `warning`) into the run's status file.

    Args:
        folder: the run folder (locked while the file is read and written).
        status_path: its `status.json`.
        run_id: the run's id (set in the file when missing).
        state: the new state, or None to keep it.
        if_state: only merge when the current state is one of these (a missing status
            counts as ""); None always merges.
        fields: JSON-ready figures to merge; not `state`.
        warning: one more line for the `warnings` list. Defaults to None.

    Returns:
        The new status (None when `if_state` did not match), and the damage found in
        the file, if any (a damaged file is rebuilt even when `if_state` did not match).

    Raises:
        ValueError: `fields` holds a `state`.
    """
    if "state" in fields:
        raise ValueError("pass the state as the first argument of write_status, not as a field")
    pid = fields.get("pid")
    if isinstance(pid, int) and "pid_start" not in fields:
        fields["pid_start"] = process_start_ticks(pid)
    folder.mkdir(parents=True, exist_ok=True)
    with fsutil.file_lock(folder):  # read-merge-write, serialised across processes
        status, damage = heal.read_json_object(status_path, what="the run's status file")
        matched = if_state is None or status.get("state", "") in if_state
        if not matched and damage is None:
            return None, None
        if matched:  # a damaged file not matched is still rebuilt, with its warning only
            status.update(fields)
            if state is not None:
                status["state"] = state
        new_warnings = [w for w in (damage and damage.message, warning) if w]
        if new_warnings:
            status["warnings"] = [*status.get("warnings", []), *new_warnings]
        now = now_iso()
        current = status.get("state")
        status.setdefault("run_id", run_id)
        status.setdefault("created_at", now)
        if current == "running":
            status.setdefault("started_at", now)
        if current in FINISHED_STATES:
            status.setdefault("ended_at", now)
        status["updated_at"] = now
        fsutil.atomic_write_json(status_path, status)
    return (status if matched else None), damage
