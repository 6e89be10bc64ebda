"""A run folder: one directory per training, and the files in it.

A run directory (see shared/DESIGN.md) is written by the trainer and read by
the dashboard, the CLI and other processes at the same time, so:

- every file except `events.jsonl` and `train.log` is replaced atomically
  (`engine.core.fsutil`), so a reader never sees half a file;
- `events.jsonl` is append-only, one JSON object a line, each written with a
  single `write` on an `O_APPEND` descriptor; a follower reads from a byte
  offset and leaves a partial last line for the next poll;
- `status.json` is read-merged-written under an exclusive lock on the run
  folder, so the job launcher and the trainer can both update it
  (`engine.core.run_status`);
- run ids are `YYYYmmdd-HHMMSS-<backbone>[-N]`, made unique by an exclusive
  `mkdir`, so two runs never share a folder, even across processes;
- a damaged `status.json` (not a JSON object) met by a status update, or an
  `events.jsonl` ending in a torn line met by the first event this process
  appends, is moved aside (`engine.core.heal`) and rebuilt, and the damage is
  recorded as a warning (`record_warning`).

The run folder is the one contract every layer shares (the trainer writes it,
the exporter and the predictor read it, the job runner watches it), so it
lives in `core`; `docs/run-contract.md` lists its files and keys.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from engine.core import fsutil, paths
from engine.core.errors import StudioError
from engine.core.fsutil import read_json_dict
from engine.core.jsonlines import append_line, cut_torn_tail, read_lines
from engine.core.run_status import merge_status
from engine.core.runstate import RUN_STATES, new_run_folder, now_iso

REQUEST_FILE = "request.json"
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
# What `export/` holds, by export format name.
EXPORT_FILES = {
    "saved_model": "saved_model",
    "tflite": "model.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}

# --------------------------------------------------------------------------- run directory


class RunDir:
    """One run's folder and the files in it.

    Args:
        path: the run folder (need not exist yet, e.g. when reading a deleted run).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.run_id = self.path.name
        self._events_checked = False

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    @classmethod
    def create(cls, runs_dir: str | os.PathLike[str] | None = None, *, backbone: str) -> RunDir:
        """Make a new, empty run folder named `YYYYmmdd-HHMMSS-<backbone>[-N]`
        (`engine.core.runstate.new_run_folder`: an exclusive `mkdir`, unique across processes).

        Args:
            runs_dir: the runs folder, created if missing. Defaults to `engine.core.paths.runs_dir()`.
            backbone: the architecture name, part of the folder name.

        Returns:
            The new run.

        Raises:
            StudioError: if `backbone` is not a safe name, or no free name was found.
        """
        root = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
        return cls(new_run_folder(root, backbone))

    # ----------------------------------------------------------------- paths

    @property
    def request_path(self) -> Path:
        """`request.json`: the settings the page or CLI asked for, as given."""
        return self.path / REQUEST_FILE

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
    def tflite_path(self) -> Path:
        """`export/model.tflite`: the float model every run writes (what prediction runs)."""
        return self.export_dir / EXPORT_FILES["tflite"]

    def has_model(self) -> bool:
        """Whether the run holds a model to predict with (its float TFLite or model.keras)."""
        return self.tflite_path.is_file() or self.model_path.is_file()

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
        return read_json_dict(self.config_path)

    def write_request(self, request: dict[str, Any]) -> Path:
        """Write `request.json` (what a job's process is asked to do) atomically.

        Args:
            request: JSON-ready settings, as `TrainConfig.as_dict()` gives them.

        Returns:
            The file written.

        Raises:
            TypeError: if `request` is not a dict.
        """
        if not isinstance(request, dict):
            raise TypeError(f"request must be a dict, got {type(request).__name__}")
        return fsutil.atomic_write_json(self.request_path, request)

    def read_request(self) -> dict[str, Any] | None:
        """The run's `request.json`, or None when it has none.

        Raises:
            StudioError: the file exists but is not a JSON object (a damaged request).
        """
        if not self.request_path.exists():
            return None
        request = read_json_dict(self.request_path)
        if not request:
            raise StudioError(f"{self.request_path} is not a JSON object; start the training again")
        return request

    # ----------------------------------------------------------------- status

    def write_status(
        self, state: str, *, if_state: Collection[str] | None = None, **fields: Any
    ) -> dict[str, Any] | None:
        """Set the run's state and merge `fields` into `status.json`, atomically, with its times
        and a `pid`'s start time (`engine.core.run_status.merge_status`).

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

    def record_warning(self, message: str, **fields: Any) -> None:
        """Record something the user should know that did not stop the run (a healed file).

        It goes to the `warnings` list of `status.json`, a `warning` event in
        `events.jsonl` and a `warning: ...` line in `train.log`.

        Args:
            message: one line saying what happened.
            **fields: JSON-ready details for the event (`path`, `moved_to`...).
        """
        self._merge_status(None, None, {}, warning=message)
        self._note_warning(message, fields)

    def _note_warning(self, message: str, fields: dict[str, Any]) -> None:
        # Best effort: a warning must never be what fails the run (a full disk says so elsewhere).
        with contextlib.suppress(OSError):
            self.append_event({**fields, "event": "warning", "message": message})
        with contextlib.suppress(OSError), open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"warning: {message}\n")

    def _merge_status(
        self,
        state: str | None,
        if_state: Collection[str] | None,
        fields: dict[str, Any],
        warning: str | None = None,
    ) -> dict[str, Any] | None:
        status, damage = merge_status(
            self.path, self.status_path, self.run_id, state, if_state, fields, warning
        )
        if damage is not None:
            self._note_warning(damage.message, damage.as_dict())
        return status

    def read_status(self) -> dict[str, Any]:
        """The run's `status.json`, or {} if it is missing or unreadable."""
        return read_json_dict(self.status_path)

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
        if not self._events_checked:
            self._events_checked = True  # before healing: the warning is an event too
            damage = cut_torn_tail(self.events_path, what="the run's events file")
            if damage is not None:
                self.record_warning(damage.message, **damage.as_dict())
        append_line(self.events_path, {"time": round(time.time(), 3), **event})

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
        return read_lines(self.events_path, offset)

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
        report = read_json_dict(self.report_path)
        if not report:
            raise StudioError(f"{self.report_path} is not a JSON report; train the run again")
        return report

    # ----------------------------------------------------------------- cancel

    def request_cancel(self) -> None:
        """Ask the trainer to stop at its next step (writes the cancel flag file)."""
        fsutil.atomic_write_text(self.cancel_path, now_iso() + "\n")

    def cancel_requested(self) -> bool:
        """Whether a cancel was requested for this run."""
        return self.cancel_path.exists()
