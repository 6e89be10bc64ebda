"""The runs folder: listing runs, finding one, and deleting one safely.

A run folder itself (its files, status and events) is `engine.core.rundir.RunDir`;
this module looks at the runs folder as a whole, as the Runs page and
`python -m engine runs` do.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core import paths
from engine.core.errors import StudioError
from engine.core.fsutil import read_json_dict
from engine.core.jsonlines import read_tail
from engine.core.procs import process_alive
from engine.core.rundir import STATUS_FILE, RunDir
from engine.core.runstate import (
    ACTIVE_STATES,
    RUN_ID_RE,
    RUN_STATES,
    parse_time,
    recently_updated,
    validate_run_id,
)


@dataclass(frozen=True)
class RunSummary:
    """One run, as the runs table shows it.

    Args:
        run_id: the folder name.
        path: the run folder.
        architecture: the backbone name.
        dataset: the dataset folder (or name) it was trained on, if known.
        status: the state (queued, running, done, failed, cancelled).
        test_accuracy: the final test accuracy (0..1), if known.
        started_at: when it started (ISO 8601), if known.
        duration_s: seconds from start to end (or to the last update while running).
        steps: the last training step reached, if any.
        error: why it failed, if it did.
        job: what the folder holds: "retrain" (a training run) or "sweep" (a model
            comparison, whose `architecture` is "sweep" and `test_accuracy` its best).
            Defaults to "retrain".
    """

    run_id: str
    path: Path
    architecture: str
    dataset: str | None
    status: str
    test_accuracy: float | None
    started_at: str | None
    duration_s: float | None
    steps: int | None
    error: str | None
    job: str = "retrain"

    @property
    def run(self) -> RunDir:
        """The `RunDir` of this run."""
        return RunDir(self.path)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for tables)."""
        return {
            "run_id": self.run_id,
            "path": str(self.path),
            "architecture": self.architecture,
            "dataset": self.dataset,
            "status": self.status,
            "test_accuracy": self.test_accuracy,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "steps": self.steps,
            "error": self.error,
            "job": self.job,
        }


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _dataset_name(config: dict[str, Any]) -> str | None:
    dataset = config.get("dataset")
    if isinstance(dataset, str):
        return dataset
    if isinstance(dataset, dict):
        for key in ("root", "name", "path"):
            if isinstance(dataset.get(key), str):
                return dataset[key]
    image_dir = config.get("image_dir")
    return image_dir if isinstance(image_dir, str) else None


def _last_step(run: RunDir) -> int | None:
    """The last `step` event's step, read from the end of events.jsonl only."""
    for event in reversed(read_tail(run.events_path)):
        if event.get("event") == "step" and isinstance(event.get("step"), int):
            return event["step"]
    return None


def _summarise(run: RunDir, status: dict[str, Any], config: dict[str, Any]) -> RunSummary:
    architecture = status.get("architecture") or config.get("architecture")
    if not isinstance(architecture, str):
        # the id ends with the backbone (and maybe -N)
        architecture = re.sub(r"-\d+$", "", run.run_id.split("-", 2)[-1])
    test_accuracy = _as_float(status.get("test_accuracy"))
    if test_accuracy is None and run.report_path.exists():
        report = read_json_dict(run.report_path)
        test_accuracy = _as_float(report.get("test_accuracy", report.get("accuracy")))
    started = parse_time(status.get("started_at"))
    ended = parse_time(status.get("ended_at")) or parse_time(status.get("updated_at"))
    duration = round((ended - started).total_seconds(), 3) if started and ended else None
    steps = status.get("step")
    if not isinstance(steps, int) or isinstance(steps, bool):
        steps = _last_step(run)
    error = status.get("error")
    job = status.get("job") or config.get("job")
    return RunSummary(
        run_id=run.run_id,
        path=run.path,
        architecture=architecture,
        dataset=_dataset_name(config),
        status=str(status.get("state", "unknown")),
        test_accuracy=test_accuracy,
        started_at=status.get("started_at") if isinstance(status.get("started_at"), str) else None,
        duration_s=duration,
        steps=steps,
        error=error if isinstance(error, str) else None,
        job=job if isinstance(job, str) else "retrain",
    )


def _root(runs_dir: str | os.PathLike[str] | None) -> Path:
    return Path(runs_dir) if runs_dir is not None else paths.runs_dir()


def iter_run_dirs(runs_dir: str | os.PathLike[str] | None = None) -> Iterator[RunDir]:
    """The folders of the runs folder that look like runs, in no particular order.

    A run folder has a run-id name and a status.json or config.json; anything
    else (other files, half-made folders, symlinks) is passed over.

    Args:
        runs_dir: the runs folder. Defaults to `engine.core.paths.runs_dir()`.

    Returns:
        An iterator of `RunDir` (empty if the folder is missing).
    """
    root = _root(runs_dir)
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if not RUN_ID_RE.match(entry.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        run = RunDir(entry.path)
        if run.status_path.is_file() or run.config_path.is_file():
            yield run


def list_runs(
    runs_dir: str | os.PathLike[str] | None = None, *, job: str | None = None
) -> list[RunSummary]:
    """Every run in the runs folder, newest first.

    Folders that are not runs (other names, no status or config yet, unreadable
    files) are skipped, never an error.

    Args:
        runs_dir: the runs folder. Defaults to `engine.core.paths.runs_dir()`.
        job: only folders of this job ("retrain" or "sweep"). Defaults to None (all).

    Returns:
        The runs' summaries, newest first (an empty list if the folder is missing).
    """
    summaries = []
    for run in iter_run_dirs(runs_dir):
        status, config = run.read_status(), run.read_config()
        if not status and not config:
            continue
        try:
            summary = _summarise(run, status, config)
        except (OSError, ValueError, TypeError):
            continue
        if job is None or summary.job == job:
            summaries.append(summary)
    # the id starts with the creation time; created_at orders runs of the same second
    return sorted(
        summaries,
        key=lambda s: (s.run_id[:15], _created_at(s), _same_second_index(s.run_id)),
        reverse=True,
    )


def _created_at(summary: RunSummary) -> str:
    value = read_json_dict(summary.path / STATUS_FILE).get("created_at")
    return value if isinstance(value, str) else ""


def _same_second_index(run_id: str) -> int:
    match = re.search(r"-(\d+)$", run_id)
    return int(match.group(1)) if match and len(run_id) - len(match.group(0)) > 15 else 1


def get_run(run_id: str, runs_dir: str | os.PathLike[str] | None = None) -> RunSummary:
    """One run's summary by id.

    Args:
        run_id: the run's folder name.
        runs_dir: the runs folder. Defaults to `engine.core.paths.runs_dir()`.

    Returns:
        The run's summary (its `.run` is the `RunDir`).

    Raises:
        StudioError: if the id is malformed or no such run exists.
    """
    validate_run_id(run_id)
    root = _root(runs_dir)
    run = RunDir(root / run_id)
    status, config = run.read_status(), run.read_config()
    if run.path.is_symlink() or not run.path.is_dir() or (not status and not config):
        raise StudioError(f"no run {run_id!r} in {root}; list the runs with `python -m engine runs`")
    return _summarise(run, status, config)


def latest_run(
    runs_dir: str | os.PathLike[str] | None = None,
    *,
    state: str | None = "done",
    job: str | None = "retrain",
) -> RunSummary | None:
    """The newest run in `state`.

    Args:
        runs_dir: the runs folder. Defaults to `engine.core.paths.runs_dir()`.
        state: the state wanted, or None for any state. Defaults to "done".
        job: "retrain" (a training, what has a model), "sweep", or None for either.
            Defaults to "retrain".

    Returns:
        The newest matching run's summary, or None if there is none.

    Raises:
        ValueError: if `state` is not a run state.
    """
    if state is not None and state not in RUN_STATES:
        raise ValueError(f"state={state!r} is not a run state; use one of {RUN_STATES} or None")
    for summary in list_runs(runs_dir, job=job):
        if state is None or summary.status == state:
            return summary
    return None


def delete_run(run_id: str, runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """Delete a run's folder, unless its training is still running.

    The folder is first renamed to a hidden name, so it disappears from the
    list at once and a half-deleted run is never shown.

    Args:
        run_id: the run's folder name.
        runs_dir: the runs folder. Defaults to `engine.core.paths.runs_dir()`.

    Returns:
        The path that was deleted.

    Raises:
        StudioError: if the id is malformed, the run does not exist, is not a
            folder directly inside the runs folder, or is still running.
    """
    validate_run_id(run_id)
    root = _root(runs_dir)
    path = root / run_id
    if path.is_symlink() or not path.is_dir():
        raise StudioError(f"no run {run_id!r} in {root}; list the runs with `python -m engine runs`")
    if path.resolve().parent != root.resolve():
        raise StudioError(
            f"{path} is not a folder directly inside the runs folder {root}; not deleting it"
        )
    run = RunDir(path)
    status = run.read_status()
    if not status and not run.config_path.is_file():
        raise StudioError(
            f"{path} does not look like a run (no status.json or config.json); not deleting it"
        )
    if status.get("state") in ACTIVE_STATES and (
        process_alive(status.get("pid"), status.get("pid_start"))
        or (status.get("pid") is None and recently_updated(status))  # being launched right now
    ):
        raise StudioError(
            f"run {run_id} is still {status['state']} (pid {status.get('pid')}); "
            "cancel it first, then delete it"
        )
    trash = root / f".deleting-{run_id}-{os.getpid()}-{time.monotonic_ns()}"
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return path


def summarise(run: RunDir) -> RunSummary:
    """A `RunSummary` of one run (from its config, status, report and events).

    Args:
        run: the run folder.

    Returns:
        Its summary.
    """
    return _summarise(run, run.read_status(), run.read_config())
