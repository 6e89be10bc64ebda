"""A finished run's exports started from the dashboard: `python -m engine export` as a job.

The Train report's export buttons must not wait on TensorFlow inside the page,
so `start_export` launches the same command a user would run
(`python -m engine export --run_dir RUN --formats ...`) in its own session,
its output appended to the run's train.log, and records it at once in
status.json's `exports` as `queued` with its pid, so a second click or a
second tab sees it and does not start another. From there the export process
reports itself (`engine.train.follow_up`), and `export_state` tells a page
what is going on, a process that died included.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from engine.core.errors import StudioError
from engine.core.fsutil import file_lock
from engine.core.procs import process_start_ticks, spawn_detached
from engine.core.rundir import RunDir
from engine.core.runstate import now_iso
from engine.serve.export import FORMATS
from engine.train.follow_up import LOCK_FILE, STATUS_KEY, export_state

ACTIVE = ("queued", "running")


def start_export(run: RunDir, formats: Sequence[str], *, python: str = sys.executable) -> int:
    """Start exporting `formats` of a done run in the background.

    Args:
        run: the run folder (state `done`).
        formats: any of `engine.serve.export.FORMATS`.
        python: the interpreter. Defaults to this one.

    Returns:
        The export process's pid.

    Raises:
        StudioError: the run is not done, an export of it is already under way, a
            format is unknown, or the process could not start.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise StudioError(f"formats={list(formats)!r} is not allowed; choose from {list(FORMATS)}")
    with file_lock(run.path / (LOCK_FILE + ".start")):
        status = run.read_status()
        if status.get("state") != "done":
            raise StudioError(f"run {run.run_id} is not done; export a finished run")
        current = export_state(run)
        if current.get("state") in ACTIVE:
            raise StudioError(
                f"the exports of run {run.run_id} are already {current['state']}; wait for them"
            )
        argv = [
            python,
            "-m",
            "engine",
            "export",
            "--run_dir",
            str(run.path),
            "--formats",
            ",".join(formats),
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            process = spawn_detached(argv, log_path=run.log_path, env=env, cwd=run.path)
        except OSError as exc:
            raise StudioError(
                f"could not start the export ({exc}); check the Python interpreter"
            ) from exc
        queued = {"state": "queued", "formats": list(formats), "pid": process.pid,
                  "pid_start": process_start_ticks(process.pid), "started": now_iso()}  # fmt: skip
        # the process may have reported itself already: keep what it wrote
        latest = run.read_status().get(STATUS_KEY)
        if not (isinstance(latest, dict) and latest.get("pid") == process.pid):
            run.update_status(**{STATUS_KEY: queued})
        return process.pid
