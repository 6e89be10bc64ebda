"""What a training tells the world: events, retrain.py's lines, and being told to stop.

`EventSink` appends each event to the run's `events.jsonl` (the page follows
that file) and hands it to an in-process callback; progress snapshots are
throttled to about one event a second. `CancelFlag` watches the run's cancel
flag file and turns SIGTERM into the same request. `Echo` prints retrain.py's
stdout lines, or drops them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from engine.core.errors import StudioError, disk_full_error
from engine.core.progress import Progress, ProgressCallback
from engine.core.rundir import RunDir

EVENT_PROGRESS_INTERVAL_S = 1.0

EventCallback = Callable[[dict[str, Any]], None]


class RunCancelled(Exception):
    """Raised inside a training when the run's cancel flag is seen."""


class Echo:
    """Prints retrain.py-style lines through `write` (or drops them when it is None)."""

    def __init__(self, write: Callable[[str], None] | None) -> None:
        self._write = write

    def __call__(self, line: str) -> None:
        if self._write is not None:
            self._write(line)


class EventSink:
    """Sends events to events.jsonl and the caller's callback; throttles progress.

    Args:
        run: the run folder the events go to.
        on_event: called with each event too. Defaults to None.
        progress: called with every progress snapshot (unthrottled). Defaults to None.
    """

    def __init__(
        self,
        run: RunDir,
        on_event: EventCallback | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self._run = run
        self._on_event = on_event
        self._progress = progress
        self._last_progress: dict[str, float] = {}

    def emit(self, event: dict[str, Any]) -> None:
        """Append `event` (with `time` added) and pass it on."""
        event = {**event, "time": round(time.time(), 3)}
        self._run.append_event(event)
        if self._on_event is not None:
            self._on_event(event)

    def phase(self, name: str, **fields: Any) -> None:
        """A `phase` event: scan, bottlenecks, train, evaluate, export, done or failed."""
        self.emit({"event": "phase", "phase": name, **fields})

    def on_progress(self, p: Progress) -> None:
        """A progress callback: forwards every snapshot, records about one a second."""
        if self._progress is not None:
            self._progress(p)
        finished = p.total > 0 and p.done >= p.total
        last = self._last_progress.get(p.phase)
        if finished or last is None or p.elapsed_s - last >= EVENT_PROGRESS_INTERVAL_S:
            self._last_progress[p.phase] = p.elapsed_s
            self.emit({"event": "progress", **p.as_dict()})


class CancelFlag:
    """The run's cancel flag file, plus SIGTERM while training in the main thread.

    Args:
        run: the run folder whose flag is watched.
    """

    def __init__(self, run: RunDir) -> None:
        self._run = run
        self._set = False

    def requested(self) -> bool:
        """Whether a cancel was asked for (the flag file, or SIGTERM)."""
        if not self._set and self._run.cancel_requested():
            self._set = True
        return self._set

    @contextlib.contextmanager
    def sigterm(self) -> Iterator[None]:
        """Within the block, SIGTERM asks for a cancel instead of killing the process."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            self._set = True
            with contextlib.suppress(OSError):
                self._run.request_cancel()

        previous = signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def stdout_is(path: os.PathLike[str] | str) -> bool:
    """Whether this process's stdout is the file `path` (a job's stdout is its run's train.log)."""
    try:
        ours = os.fstat(sys.stdout.fileno())
        theirs = os.stat(path)
    except (OSError, ValueError, AttributeError):  # no real stdout (captured, closed), no file
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def record_failure(run: RunDir, sink: EventSink, exc: BaseException, **fields: Any) -> None:
    """Say in the run folder that a job failed: the traceback in train.log, `failed` with the
    error in status.json (a `StudioError`'s message as it is, other errors with their type), and
    a `failed` phase event.

    Args:
        run: the run folder.
        sink: the run's event sink.
        exc: what ended the job.
        **fields: more status fields (the step reached).
    """
    full = disk_full_error(exc)  # a full disk is said as such, not as an OSError
    error = str(full or exc) or type(exc).__name__
    if not isinstance(exc, StudioError) and full is None:
        error = f"{type(exc).__name__}: {error}"
    log_failure(run, exc)
    with contextlib.suppress(Exception):
        run.write_status("failed", error=error, **fields)
        sink.phase("failed", error=error)


def log_failure(run: RunDir, exc: BaseException) -> None:
    """Append the traceback to the run's train.log (the job runner may also write there)."""
    with contextlib.suppress(OSError), open(run.log_path, "a", encoding="utf-8") as handle:
        handle.write("".join(traceback.format_exception(exc)))
