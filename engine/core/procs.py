"""Processes the studio starts and later finds again: identity, launch, stop.

A pid alone does not identify a process: the kernel recycles pids. A process
is identified by its pid *and* its start time (`process_start_ticks`), both
recorded when it was launched. Trainers and TensorBoard servers are started
in their own session (`spawn_detached`), so they survive the page or the
command that started them, and are stopped as a whole process group
(`stop_group`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

POLL_INTERVAL_S = 0.05
KILL_WAIT_S = 5.0

Popen = Callable[..., "subprocess.Popen[Any]"]


def _read_proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (the command name may hold spaces, so split after it)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    _, _, rest = raw.rpartition(")")
    return rest.split()


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


def spawn_detached(
    argv: Sequence[str],
    *,
    log_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    popen: Popen = subprocess.Popen,
) -> subprocess.Popen[Any]:
    """Start `argv` in its own session, output appended to `log_path`.

    Its own session makes it the leader of a new process group: a Ctrl-C or
    the end of the parent does not reach it, and `stop_group` stops it with
    its children.

    Args:
        argv: the program and its arguments.
        log_path: the file stdout and stderr are appended to.
        env: the environment. Defaults to None (this process's).
        cwd: the working folder. Defaults to None (this process's).
        popen: the launcher. Defaults to `subprocess.Popen`.

    Returns:
        The started process.

    Raises:
        OSError: the program could not be started.
    """
    with open(log_path, "ab") as log:
        return popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=None if cwd is None else str(cwd),
            env=None if env is None else dict(env),
            start_new_session=True,
            close_fds=True,
        )


def wait_until_gone(alive: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `alive()` until it is False or `timeout_s` passes.

    Args:
        alive: says whether the process still runs (and reaps it, for our own children).
        timeout_s: seconds to wait at most.

    Returns:
        True when the process is gone.
    """
    deadline = time.monotonic() + timeout_s
    while alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def stop_group(
    pid: int | None,
    pid_start: int | None = None,
    *,
    terminate_grace_s: float,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Stop a process group led by `pid`: SIGTERM, then SIGKILL if it lingers.

    Nothing is sent when the process is gone or the pid now belongs to
    another process (its start time differs).

    Args:
        pid: the group leader (a process started by `spawn_detached`).
        pid_start: its recorded start time. Defaults to None (not checked).
        terminate_grace_s: seconds between SIGTERM and SIGKILL.
        alive: liveness check. Defaults to `process_alive(pid, pid_start)`.

    Returns:
        True when the process is gone at the end.
    """
    if pid is None:
        return True
    check = alive if alive is not None else (lambda: process_alive(pid, pid_start))
    for sig, wait_s in ((signal.SIGTERM, terminate_grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        if not check():
            return True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        if wait_until_gone(check, wait_s):
            return True
    return not check()
