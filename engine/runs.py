"""The runs folder: one directory per training, and the files in it.

A run directory (see shared/DESIGN.md) is written by the trainer and read by
the dashboard, the CLI and other processes at the same time, so:

- every file except `events.jsonl` and `train.log` is replaced atomically
  (`engine.fsutil`), so a reader never sees half a file;
- `events.jsonl` is append-only, one JSON object a line, each written with a
  single `write` on an `O_APPEND` descriptor; a follower reads from a byte
  offset and leaves a partial last line for the next poll;
- `status.json` is read-merged-written under an exclusive lock on the run
  folder, so the job launcher and the trainer can both update it;
- run ids are `YYYYmmdd-HHMMSS-<backbone>[-N]`, made unique by an exclusive
  `mkdir`, so two runs never share a folder, even across processes.

This module also holds the process-liveness helpers that `engine.jobs` and
`engine.tensorboard` use, so that a recycled pid is never taken for a live job.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import fsutil, paths
from engine.errors import StudioError

try:  # POSIX only; on other systems status updates are merely atomic, not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

RUN_STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
FINISHED_STATES = ("done", "failed", "cancelled")

CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
STATUS_FILE = "status.json"
MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
REPORT_FILE = "report.json"
TB_DIR = "tb"
EXPORT_DIR = "export"
LOG_FILE = "train.log"
CANCEL_FILE = "cancel.flag"

# A backbone name becomes part of a folder name: keep it to a safe alphabet.
_BACKBONE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
_MAX_SAME_SECOND = 1000
# A queued run without a pid younger than this is being launched, not abandoned.
LAUNCH_WINDOW_S = 120.0
# Enough of the end of events.jsonl to find the last step event cheaply.
_TAIL_BYTES = 16384


def _now_iso() -> str:
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
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id) or ".." in run_id:
        raise StudioError(
            f"run id {run_id!r} is not valid; a run id looks like "
            "'20250101-120000-efficientnet_lite0' (see `python -m engine runs`)"
        )
    return run_id


# --------------------------------------------------------------------------- processes


def process_start_ticks(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (from /proc/<pid>/stat).

    Together with the pid this identifies a process: a recycled pid has another
    start time.

    Args:
        pid: the process id.

    Returns:
        The start time, or None if the process does not exist or /proc is unavailable.
    """
    stat = _read_proc_stat(pid)
    if stat is None or len(stat) < 20:
        return None
    try:
        return int(stat[19])  # field 22 of stat; fields here start at field 3
    except ValueError:
        return None


def _read_proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (the command name may hold spaces, so split after it)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    _, _, rest = raw.rpartition(")")
    return rest.split()


def process_alive(pid: Any, start_ticks: int | None = None) -> bool:
    """Whether process `pid` is running (not a zombie) and, if given, started at `start_ticks`.

    Args:
        pid: the process id; anything that is not a positive int counts as not alive.
        start_ticks: the start time recorded when the process was launched
            (`process_start_ticks`); a different one means the pid was recycled.
            Defaults to None (not checked).

    Returns:
        True if the process exists, is not a zombie and matches `start_ticks`.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    stat = _read_proc_stat(pid)
    if stat is None:
        return not Path("/proc/self/stat").exists()  # no /proc: trust kill(0)
    if stat and stat[0] in ("Z", "X"):
        return False
    if start_ticks is not None:
        ticks = process_start_ticks(pid)
        if ticks is not None and ticks != start_ticks:
            return False
    return True


# --------------------------------------------------------------------------- run directory


class RunDir:
    """One run's folder and the files in it.

    Args:
        path: the run folder (need not exist yet, e.g. when reading a deleted run).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.run_id = self.path.name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    @classmethod
    def create(cls, runs_dir: str | os.PathLike[str] | None = None, *, backbone: str) -> RunDir:
        """Make a new, empty run folder named `YYYYmmdd-HHMMSS-<backbone>[-N]`.

        The folder is created with an exclusive `mkdir`, so two runs started in
        the same second (even by two processes) get different folders.

        Args:
            runs_dir: the runs folder, created if missing. Defaults to `engine.paths.runs_dir()`.
            backbone: the architecture name, part of the folder name.

        Returns:
            The new run.

        Raises:
            StudioError: if `backbone` is not a safe name, or no free name was found.
        """
        if not isinstance(backbone, str) or not _BACKBONE_RE.match(backbone) or ".." in backbone:
            raise StudioError(
                f"backbone={backbone!r} cannot name a run folder; use letters, digits, "
                "'_', '-' and '.' (e.g. 'efficientnet_lite0')"
            )
        root = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
        root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{backbone}"
        for n in range(1, _MAX_SAME_SECOND + 1):
            name = base if n == 1 else f"{base}-{n}"
            try:
                (root / name).mkdir()
            except FileExistsError:
                continue
            return cls(root / name)
        raise StudioError(
            f"could not find a free run folder name for {base!r} in {root}; wait a second and try again"
        )

    # ----------------------------------------------------------------- paths

    @property
    def config_path(self) -> Path:
        """`config.json`: every setting, the dataset fingerprint, versions."""
        return self.path / CONFIG_FILE

    @property
    def events_path(self) -> Path:
        """`events.jsonl`: one JSON event a line."""
        return self.path / EVENTS_FILE

    @property
    def status_path(self) -> Path:
        """`status.json`: state and figures of the run."""
        return self.path / STATUS_FILE

    @property
    def model_path(self) -> Path:
        """`model.keras`: backbone + head."""
        return self.path / MODEL_FILE

    @property
    def labels_path(self) -> Path:
        """`labels.txt`: one class a line, in output order."""
        return self.path / LABELS_FILE

    @property
    def report_path(self) -> Path:
        """`report.json`: the evaluation report."""
        return self.path / REPORT_FILE

    @property
    def tb_dir(self) -> Path:
        """`tb/`: TensorBoard event files."""
        return self.path / TB_DIR

    @property
    def export_dir(self) -> Path:
        """`export/`: SavedModel and TFLite files."""
        return self.path / EXPORT_DIR

    @property
    def log_path(self) -> Path:
        """`train.log`: the training process's stdout and stderr."""
        return self.path / LOG_FILE

    @property
    def cancel_path(self) -> Path:
        """The flag file whose presence asks the trainer to stop between steps."""
        return self.path / CANCEL_FILE

    # ----------------------------------------------------------------- config

    def write_config(self, config: dict[str, Any]) -> Path:
        """Write `config.json` atomically.

        Args:
            config: JSON-ready settings.

        Returns:
            The file written.

        Raises:
            TypeError: if `config` is not a dict.
        """
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        return fsutil.atomic_write_json(self.config_path, config)

    def read_config(self) -> dict[str, Any]:
        """The run's `config.json`, or {} if it is missing or unreadable."""
        return _read_json_dict(self.config_path)

    # ----------------------------------------------------------------- status

    def write_status(
        self, state: str, *, if_state: Collection[str] | None = None, **fields: Any
    ) -> dict[str, Any] | None:
        """Set the run's state and merge `fields` into `status.json`, atomically.

        `updated_at` is always set; `created_at`, `started_at` (on "running") and
        `ended_at` (on a finished state) are set the first time they apply. When
        `pid` is given without `pid_start`, the process's start time is recorded
        so that a recycled pid is never mistaken for this run's process.

        Args:
            state: one of queued, running, done, failed, cancelled.
            if_state: only write if the current state is one of these (a missing
                status counts as ""). Defaults to None (always write).
            **fields: JSON-ready figures to merge (pid, error, test_accuracy...).

        Returns:
            The new status, or None when `if_state` did not match.

        Raises:
            ValueError: if `state` is not one of the run states.
        """
        if state not in RUN_STATES:
            raise ValueError(f"state={state!r} is not a run state; use one of {RUN_STATES}")
        return self._merge_status(state, if_state, fields)

    def update_status(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into `status.json` without changing the state.

        Args:
            **fields: JSON-ready figures to merge.

        Returns:
            The new status.
        """
        result = self._merge_status(None, None, fields)
        assert result is not None
        return result

    def _merge_status(
        self, state: str | None, if_state: Collection[str] | None, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        if "state" in fields:
            raise ValueError("pass the state as the first argument of write_status, not as a field")
        pid = fields.get("pid")
        if isinstance(pid, int) and "pid_start" not in fields:
            fields["pid_start"] = process_start_ticks(pid)
        with self._status_lock():
            status = self.read_status()
            if if_state is not None and status.get("state", "") not in if_state:
                return None
            now = _now_iso()
            status.update(fields)
            if state is not None:
                status["state"] = state
            current = status.get("state")
            status.setdefault("run_id", self.run_id)
            status.setdefault("created_at", now)
            if current == "running":
                status.setdefault("started_at", now)
            if current in FINISHED_STATES:
                status.setdefault("ended_at", now)
            status["updated_at"] = now
            fsutil.atomic_write_json(self.status_path, status)
            return status

    @contextlib.contextmanager
    def _status_lock(self) -> Iterator[None]:
        """Serialise read-merge-write of status.json across processes (flock on the folder)."""
        if fcntl is None:
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def read_status(self) -> dict[str, Any]:
        """The run's `status.json`, or {} if it is missing or unreadable."""
        return _read_json_dict(self.status_path)

    # ----------------------------------------------------------------- events

    def append_event(self, event: dict[str, Any]) -> None:
        """Append one event as a JSON line to `events.jsonl`, with `time` added.

        The line is written with one `write` call on an append-only descriptor,
        so a follower sees either none of it or all of it once complete.

        Args:
            event: a JSON-ready dict with an `"event"` name (see the contract).

        Raises:
            TypeError: if `event` is not a dict with a string `"event"` key.
        """
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise TypeError(f"an event must be a dict with an 'event' name, got {event!r}")
        record = dict(event)
        record.setdefault("time", round(time.time(), 3))
        line = (json.dumps(record, default=str, allow_nan=True) + "\n").encode("utf-8")
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            while written < len(line):  # only on odd file systems; keep the line whole
                written += os.write(fd, line[written:])
        finally:
            os.close(fd)

    def read_events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The complete events after byte `offset` of `events.jsonl`, and the offset to poll from next.

        Cheap to call every second: it reads only what was appended since
        `offset`. A partial last line is left for the next call. A complete
        line that is not a JSON object is skipped.

        Args:
            offset: where the previous call stopped. Defaults to 0 (the start).

        Returns:
            (events, new_offset).

        Raises:
            ValueError: if `offset` is not an int >= 0.
        """
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        try:
            with open(self.events_path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            return [], offset
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], offset
        events = _parse_event_lines(chunk[: end + 1])
        return events, offset + end + 1

    # ----------------------------------------------------------------- labels, report

    def write_labels(self, labels: list[str]) -> Path:
        """Write `labels.txt` (one class a line, in output order) atomically.

        Args:
            labels: the class names.

        Returns:
            The file written.

        Raises:
            ValueError: if `labels` is empty or a label is empty or holds a line break.
        """
        if isinstance(labels, str) or not labels:
            raise ValueError(f"labels must be a non-empty list of names, got {labels!r}")
        for label in labels:
            if not isinstance(label, str) or not label.strip() or "\n" in label or "\r" in label:
                raise ValueError(f"label {label!r} must be a non-empty name on one line")
        return fsutil.atomic_write_text(self.labels_path, "\n".join(labels) + "\n")

    def read_labels(self) -> list[str]:
        """The class names from `labels.txt`, in output order.

        Raises:
            StudioError: if the run has no labels.txt.
        """
        try:
            text = self.labels_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StudioError(
                f"run {self.run_id} has no {LABELS_FILE}; it has not finished training — "
                "choose a finished run"
            ) from None
        return [line.strip() for line in text.splitlines() if line.strip()]

    def write_report(self, report: dict[str, Any]) -> Path:
        """Write `report.json` atomically.

        Args:
            report: JSON-ready evaluation results.

        Returns:
            The file written.

        Raises:
            TypeError: if `report` is not a dict.
        """
        if not isinstance(report, dict):
            raise TypeError(f"report must be a dict, got {type(report).__name__}")
        return fsutil.atomic_write_json(self.report_path, report)

    def read_report(self) -> dict[str, Any]:
        """The run's `report.json`.

        Raises:
            StudioError: if the run has no readable report.json.
        """
        if not self.report_path.exists():
            raise StudioError(
                f"run {self.run_id} has no {REPORT_FILE}; it has not finished its evaluation — "
                "choose a finished run"
            )
        report = _read_json_dict(self.report_path)
        if not report:
            raise StudioError(f"{self.report_path} is not a JSON report; train the run again")
        return report

    # ----------------------------------------------------------------- cancel

    def request_cancel(self) -> None:
        """Ask the trainer to stop at its next step (writes the cancel flag file)."""
        fsutil.atomic_write_text(self.cancel_path, _now_iso() + "\n")

    def cancel_requested(self) -> bool:
        """Whether a cancel was requested for this run."""
        return self.cancel_path.exists()

    # ----------------------------------------------------------------- summary

    def summary(self) -> RunSummary:
        """A `RunSummary` of this run (from its config, status, report and events)."""
        return _summarise(self, self.read_status(), self.read_config())


def _read_json_dict(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _parse_event_lines(data: bytes) -> list[dict[str, Any]]:
    events = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


# --------------------------------------------------------------------------- listing


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
    try:
        with open(run.events_path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
    except OSError:
        return None
    for event in reversed(_parse_event_lines(tail)):
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
        report = _read_json_dict(run.report_path)
        test_accuracy = _as_float(report.get("test_accuracy", report.get("accuracy")))
    started = parse_time(status.get("started_at"))
    ended = parse_time(status.get("ended_at")) or parse_time(status.get("updated_at"))
    duration = round((ended - started).total_seconds(), 3) if started and ended else None
    steps = status.get("step")
    if not isinstance(steps, int) or isinstance(steps, bool):
        steps = _last_step(run)
    error = status.get("error")
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
    )


def _root(runs_dir: str | os.PathLike[str] | None) -> Path:
    return Path(runs_dir) if runs_dir is not None else paths.runs_dir()


def iter_run_dirs(runs_dir: str | os.PathLike[str] | None = None) -> Iterator[RunDir]:
    """The folders of the runs folder that look like runs, in no particular order.

    A run folder has a run-id name and a status.json or config.json; anything
    else (other files, half-made folders, symlinks) is passed over.

    Args:
        runs_dir: the runs folder. Defaults to `engine.paths.runs_dir()`.

    Returns:
        An iterator of `RunDir` (empty if the folder is missing).
    """
    root = _root(runs_dir)
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if not _RUN_ID_RE.match(entry.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        run = RunDir(entry.path)
        if run.status_path.is_file() or run.config_path.is_file():
            yield run


def list_runs(runs_dir: str | os.PathLike[str] | None = None) -> list[RunSummary]:
    """Every run in the runs folder, newest first.

    Folders that are not runs (other names, no status or config yet, unreadable
    files) are skipped, never an error.

    Args:
        runs_dir: the runs folder. Defaults to `engine.paths.runs_dir()`.

    Returns:
        The runs' summaries, newest first (an empty list if the folder is missing).
    """
    summaries = []
    for run in iter_run_dirs(runs_dir):
        status, config = run.read_status(), run.read_config()
        if not status and not config:
            continue
        try:
            summaries.append(_summarise(run, status, config))
        except (OSError, ValueError, TypeError):
            continue
    # the id starts with the creation time; created_at orders runs of the same second
    return sorted(
        summaries,
        key=lambda s: (s.run_id[:15], _created_at(s), _same_second_index(s.run_id)),
        reverse=True,
    )


def _created_at(summary: RunSummary) -> str:
    value = _read_json_dict(summary.path / STATUS_FILE).get("created_at")
    return value if isinstance(value, str) else ""


def _same_second_index(run_id: str) -> int:
    match = re.search(r"-(\d+)$", run_id)
    return int(match.group(1)) if match and len(run_id) - len(match.group(0)) > 15 else 1


def get_run(run_id: str, runs_dir: str | os.PathLike[str] | None = None) -> RunSummary:
    """One run's summary by id.

    Args:
        run_id: the run's folder name.
        runs_dir: the runs folder. Defaults to `engine.paths.runs_dir()`.

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
    runs_dir: str | os.PathLike[str] | None = None, *, state: str | None = "done"
) -> RunSummary | None:
    """The newest run in `state`.

    Args:
        runs_dir: the runs folder. Defaults to `engine.paths.runs_dir()`.
        state: the state wanted, or None for any state. Defaults to "done".

    Returns:
        The newest matching run's summary, or None if there is none.

    Raises:
        ValueError: if `state` is not a run state.
    """
    if state is not None and state not in RUN_STATES:
        raise ValueError(f"state={state!r} is not a run state; use one of {RUN_STATES} or None")
    for summary in list_runs(runs_dir):
        if state is None or summary.status == state:
            return summary
    return None


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


def delete_run(run_id: str, runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """Delete a run's folder, unless its training is still running.

    The folder is first renamed to a hidden name, so it disappears from the
    list at once and a half-deleted run is never shown.

    Args:
        run_id: the run's folder name.
        runs_dir: the runs folder. Defaults to `engine.paths.runs_dir()`.

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
