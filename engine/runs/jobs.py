"""Training jobs: a training runs as its own process, outside the page.

Streamlit reruns the page script on every click, and a tab can be reloaded or
closed at any time, so a training must not live in the page. It runs as a
subprocess (`python -m engine retrain --run_dir DIR ...`) and everything it
has to say goes into its run folder (`engine.core.rundir`). The page only reads.

The lifecycle, in one place:

1. **start** (`JobRegistry.start`): validate the request (a `TrainConfig`);
   under a lock (a thread lock and a file lock on the runs folder, so two tabs
   or two server processes cannot both start one) check that no job is active,
   create the run folder, write the request into it (`request.json`) and status
   `queued`, spawn the trainer (`python -m engine retrain --run_dir DIR`) in its
   own session (so it survives the server and its Ctrl-C) with stdout and
   stderr going to `train.log`, and record its pid and process start time in
   `status.json`.
2. **follow**: the trainer writes `status.json` (`running`, then `done`,
   `failed` or `cancelled`) and appends `events.jsonl`; a page polls
   `job.run_dir.read_events(offset)` and `job.state` about every second.
3. **rediscover** (`JobRegistry.active`): after a reload, in a second tab or
   a restarted server, the active job is found again from `runs/*/status.json`
   (state queued or running, pid alive and with the recorded start time, so a
   recycled pid does not count). A run whose status says running but whose
   process is gone is marked `failed`, logs kept.
4. **cancel** (`TrainingJob.cancel`): write the cancel flag, which the trainer
   checks between steps; if the process has not ended after a grace period,
   SIGTERM its process group, then SIGKILL. A status left active by a killed
   process becomes `cancelled`.
5. **clean up**: the registry reaps processes it started (no zombies); nothing
   else needs tearing down: the run directory is the record.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from engine.core import paths
from engine.core.errors import StudioError
from engine.core.fsutil import file_lock
from engine.core.procs import (
    process_alive,
    process_start_ticks,
    spawn_detached,
    stop_group,
    wait_until_gone,
)
from engine.core.rundir import RunDir
from engine.core.runstate import ACTIVE_STATES, recently_updated, validate_run_id
from engine.runs.listing import iter_run_dirs

CANCEL_GRACE_S = 15.0
TERMINATE_GRACE_S = 5.0
POLL_INTERVAL_S = 0.1
LOCK_FILE = ".jobs.lock"
DIED_MESSAGE = "the training process ended unexpectedly; see train.log"
NEVER_STARTED_MESSAGE = "the training process never started; see train.log"
CANCELLED_MESSAGE = "cancelled by the user; the training process was stopped before it could save"

Popen = Callable[..., subprocess.Popen[Any]]


class JobRequest(Protocol):
    """What `JobRegistry.start` runs: settings that check themselves and travel as JSON."""

    job_command: str

    def validate(self) -> Any: ...

    def as_dict(self) -> dict[str, Any]: ...

    def job_folder_name(self) -> str: ...


class TrainingJob:
    """A training run and its process, as seen from the dashboard or the CLI.

    Built by `JobRegistry`; knows nothing of Streamlit.

    Args:
        run_dir: the run's folder.
        pid: the trainer's process id, if known.
        pid_start: the trainer's start time in clock ticks (`engine.runs.process_start_ticks`).
            Defaults to None.
        process: the `Popen` when this process started the job. Defaults to None.
    """

    def __init__(
        self,
        run_dir: RunDir,
        pid: int | None,
        *,
        pid_start: int | None = None,
        process: subprocess.Popen[Any] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.run_id = run_dir.run_id
        self.pid = pid
        self.pid_start = pid_start
        self._process = process
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TrainingJob(run_id={self.run_id!r}, pid={self.pid}, state={self.state!r})"

    def process_alive(self) -> bool:
        """Whether the trainer process is still running (reaping it if this process started it)."""
        if self._process is not None:
            return self._process.poll() is None
        return process_alive(self.pid, self.pid_start)

    @property
    def state(self) -> str:
        """The run's state: queued, running, done, failed or cancelled.

        Read from `status.json`; an active state whose process is gone is
        turned into `failed` (written to the status, logs kept).
        """
        # Liveness first, status second: a trainer that writes "done" and exits
        # between the two reads is then seen as done, never as dead.
        alive = self.process_alive()
        status = self.run_dir.read_status()
        state = status.get("state", "queued")
        if state not in ACTIVE_STATES or alive:
            return state
        if self.pid is None and not _queued_too_long(status):
            return state
        exit_code = self._process.returncode if self._process is not None else None
        extra: dict[str, Any] = {"exit_code": exit_code} if exit_code is not None else {}
        if self.run_dir.cancel_requested():
            # stopped by a signal after a cancel: what the user asked for, not a crash
            final, extra["error"] = "cancelled", CANCELLED_MESSAGE
        else:
            final = "failed"
            extra["error"] = DIED_MESSAGE if self.pid is not None else NEVER_STARTED_MESSAGE
        new = self.run_dir.write_status(final, if_state=ACTIVE_STATES, **extra)
        return final if new is not None else self.run_dir.read_status().get("state", final)

    @property
    def job(self) -> str:
        """What the job runs: "retrain" (a training) or "sweep" (a model comparison)."""
        job = self.run_dir.read_status().get("job")
        return job if isinstance(job, str) else "retrain"

    @property
    def running(self) -> bool:
        """Whether the job is queued or running."""
        return self.state in ACTIVE_STATES

    @property
    def status(self) -> dict[str, Any]:
        """The run's whole `status.json` (after the liveness check of `state`)."""
        _ = self.state
        return self.run_dir.read_status()

    def wait(self, timeout: float | None = None) -> str:
        """Wait until the job is no longer queued or running.

        Args:
            timeout: seconds to wait at most; None waits as long as it takes. Defaults to None.

        Returns:
            The state at the end (still "queued" or "running" if the timeout passed).

        Raises:
            ValueError: if `timeout` is negative.
        """
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state
            if state not in ACTIVE_STATES:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                return state
            time.sleep(POLL_INTERVAL_S)

    def cancel(
        self,
        *,
        grace_s: float = CANCEL_GRACE_S,
        terminate_grace_s: float = TERMINATE_GRACE_S,
        block: bool = False,
    ) -> None:
        """Ask the training to stop; force it if it does not.

        Writes the cancel flag (the trainer stops at its next step, saves what
        it has and writes `cancelled`); after `grace_s` seconds a process still
        running gets SIGTERM on its process group, and after `terminate_grace_s`
        more, SIGKILL. Cancelling a finished job does nothing.

        Args:
            grace_s: seconds to wait for the trainer to honour the flag. Defaults to 15.
            terminate_grace_s: seconds between SIGTERM and SIGKILL. Defaults to 5.
            block: wait for the job to end here; otherwise the escalation runs on
                a background thread and this returns at once (what a page wants).
                Defaults to False.

        Raises:
            ValueError: if a grace period is negative.
        """
        if grace_s < 0 or terminate_grace_s < 0:
            raise ValueError(
                f"grace periods must be >= 0 seconds, got grace_s={grace_s!r}, "
                f"terminate_grace_s={terminate_grace_s!r}"
            )
        if self.state not in ACTIVE_STATES:
            return
        self.run_dir.request_cancel()
        if block:
            self._escalate(grace_s, terminate_grace_s)
        else:
            threading.Thread(
                target=self._escalate,
                args=(grace_s, terminate_grace_s),
                name=f"cancel-{self.run_id}",
                daemon=True,
            ).start()

    def _escalate(self, grace_s: float, terminate_grace_s: float) -> None:
        with self._lock:
            if not wait_until_gone(self.process_alive, grace_s):
                stop_group(self.pid, terminate_grace_s=terminate_grace_s, alive=self.process_alive)
            # a trainer killed before it could write its own final state
            self.run_dir.write_status("cancelled", if_state=ACTIVE_STATES, error=CANCELLED_MESSAGE)


def _queued_too_long(status: dict[str, Any]) -> bool:
    """A queued run without a pid is being launched; after `LAUNCH_WINDOW_S` it never will be."""
    return not recently_updated(status)


class JobRegistry:
    """Starts training jobs and finds them again; at most one runs at a time.

    Thread-safe, and safe across processes sharing a runs folder (a file
    lock guards start). Keep one per process (a page caches it with
    `st.cache_resource`), though a fresh one finds the same jobs.

    Args:
        runs_dir: the runs folder. Defaults to `engine.core.paths.runs_dir()`.
        python: the interpreter to run the trainer with. Defaults to `sys.executable`.
        popen: the process launcher. Defaults to `subprocess.Popen`.
        command: the program to run, before `--run_dir DIR`. Defaults to
            `[python, "-m", "engine", <the request's job_command>]`.
    """

    def __init__(
        self,
        *,
        runs_dir: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
        popen: Popen = subprocess.Popen,
        command: Sequence[str] | None = None,
    ) -> None:
        if command is not None and (isinstance(command, str) or not command):
            raise ValueError(f"command must be a non-empty list of arguments, got {command!r}")
        self.runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
        self.python = python
        self.command = list(command) if command is not None else None
        self._popen = popen
        self._lock = threading.RLock()
        self._jobs: dict[str, TrainingJob] = {}

    def start(self, request: JobRequest) -> TrainingJob:
        """Start a job (a training, by default) in the background.

        The request is validated first, so a bad setting is an error here, not
        a failed run; it is then written into the new run folder as
        `request.json`, which the job's process reads.

        Args:
            request: what to run: a `TrainConfig` (or anything with its
                `validate`, `as_dict`, `job_command` and `job_folder_name`).

        Returns:
            The new job (state queued until the process reports running).

        Raises:
            StudioError: a bad setting, a job already active (the message names
                it), or a process that could not be launched.
        """
        request.validate()
        kind, name = request.job_command, request.job_folder_name()
        with self._lock, file_lock(self.runs_dir / LOCK_FILE):
            current = self._active_locked()
            if current is not None:
                what = "a model comparison" if current.job == "sweep" else "a training"
                raise StudioError(
                    f"{what} is already {current.state}: run {current.run_id} (pid {current.pid}); "
                    "wait for it to finish or cancel it, then start again (one job at a time)"
                )
            run = RunDir.create(self.runs_dir, backbone=name)
            run.write_request(request.as_dict())
            run.write_status("queued", architecture=name, job=kind)
            command = self.command or [self.python, "-m", "engine", kind]
            process = self._spawn(run, [*command, "--run_dir", str(run.path)])
            job = TrainingJob(
                run, process.pid, pid_start=process_start_ticks(process.pid), process=process
            )
            if (
                run.write_status("queued", if_state=("queued",), pid=job.pid, pid_start=job.pid_start)
                is None
            ):
                # the process already wrote its own state; add only what it cannot know
                run.update_status(pid_start=job.pid_start)
            self._jobs[run.run_id] = job
            return job

    def _spawn(self, run: RunDir, argv: list[str]) -> subprocess.Popen[Any]:
        # The engine is an installed package (pyproject.toml), so the trainer finds it
        # from any folder; it runs in its run folder, where its files go.
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # train.log shows lines as they happen
        try:
            return spawn_detached(argv, log_path=run.log_path, env=env, cwd=run.path, popen=self._popen)
        except OSError as exc:
            run.write_status("failed", error=f"could not start the training process: {exc}")
            raise StudioError(
                f"could not start the training ({argv[0]}: {exc}); check the Python interpreter "
                "and that the engine is installed"
            ) from exc

    def active(self) -> TrainingJob | None:
        """The job that is queued or running, found again from the runs folder if need be.

        Runs whose status says active but whose process is gone are marked
        failed on the way.

        Returns:
            The active job, or None.
        """
        with self._lock:
            return self._active_locked()

    def _active_locked(self) -> TrainingJob | None:
        found = None
        for run in sorted(iter_run_dirs(self.runs_dir), key=lambda r: r.run_id):
            status = run.read_status()
            if status.get("state") not in ACTIVE_STATES:
                continue
            job = self._job_for(run, status)
            if job.running:
                found = job  # the newest active one wins
        return found

    def _job_for(self, run: RunDir, status: dict[str, Any]) -> TrainingJob:
        known = self._jobs.get(run.run_id)
        if known is not None:
            return known
        pid = status.get("pid")
        pid_start = status.get("pid_start")
        return TrainingJob(
            run,
            pid if isinstance(pid, int) else None,
            pid_start=pid_start if isinstance(pid_start, int) else None,
        )

    def get(self, run_id: str) -> TrainingJob:
        """The job of any run, active or finished.

        Args:
            run_id: the run's folder name.

        Returns:
            The job.

        Raises:
            StudioError: if the id is malformed or there is no such run.
        """
        validate_run_id(run_id)
        with self._lock:
            run = RunDir(self.runs_dir / run_id)
            status = run.read_status()
            if not status:
                raise StudioError(
                    f"no training job {run_id!r} in {self.runs_dir}; list the runs with "
                    "`python -m engine runs`"
                )
            return self._job_for(run, status)
