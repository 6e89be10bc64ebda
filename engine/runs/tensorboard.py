"""TensorBoard: one server process per logdir, started once and found again.

`start_tensorboard` runs `python -m tensorboard.main` as a
detached subprocess on 127.0.0.1 and a port it chose free (bind port 0); if the
port is taken anyway (a race, or an old TensorBoard on 6006) it retries on
another, so "port already in use" never reaches the user. It is ready when it
answers `/data/environment` with our logdir, which also proves the server on
that port is ours. Live servers are recorded in `<home>/tensorboard.json`
(pid, its start time, port, logdir), so a second tab, the CLI or a restarted
app reuses the same one instead of starting another.

A server may have an owner: the dashboard's process passes its pid, and stops
its servers when it exits (`stop_owned_tensorboards`). A server whose owner
died without that (SIGKILL) is an orphan; the next dashboard adopts the one
serving its logdir and stops the others (`reclaim_orphans`). A server started
from the CLI has no owner and runs until stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core import fsutil, paths, ports
from engine.core.errors import StudioError
from engine.core.procs import process_alive, process_start_ticks, spawn_detached, stop_group
from engine.runs.event_files import logdir_folder

STATE_FILE = "tensorboard.json"
LOCK_FILE = "tensorboard.lock"
LOG_FOLDER = "tensorboard"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 5
RELOAD_INTERVAL_S = 5
HTTP_TIMEOUT_S = 2.0
# TensorBoard's own words when its port is taken (tensorboard/program.py).
_PORT_BUSY_MARKERS = ("could not bind to port", "already in use", "address already in use")
# Servers this process started, so their exit is collected (no zombies, no ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}


# --------------------------------------------------------------------------- the server


@dataclass
class TensorBoardProcess:
    """A TensorBoard server serving one logdir.

    Args:
        url: where to open it, e.g. "http://127.0.0.1:41234/".
        port: its port.
        pid: its process id.
        logdir: the folder it serves (absolute).
        host: the address it listens on. Defaults to "127.0.0.1".
        pid_start: the process's start time in clock ticks, so a recycled pid
            is not taken for it. Defaults to None.
        log_path: where its output goes. Defaults to None.
        reused: whether this call found it already running. Defaults to False.
        notice: why it is not where asked (a busy port), if so. Defaults to None.
        owner_pid: the process whose exit stops it (the dashboard), if any. Defaults to None.
        owner_start: that process's start time in clock ticks. Defaults to None.
    """

    url: str
    port: int
    pid: int
    logdir: Path
    host: str = "127.0.0.1"
    pid_start: int | None = None
    log_path: Path | None = None
    reused: bool = False
    notice: str | None = field(default=None, compare=False)
    owner_pid: int | None = None
    owner_start: int | None = None

    def orphaned(self) -> bool:
        """Whether it has an owner and that process is gone."""
        return self.owner_pid is not None and not process_alive(self.owner_pid, self.owner_start)

    def alive(self) -> bool:
        """Whether the process runs and answers HTTP with this logdir."""
        return process_alive(self.pid, self.pid_start) and _serves(self.host, self.port, self.logdir)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout` seconds) and forget it.

        Args:
            timeout: seconds to wait after SIGTERM. Defaults to 10.
        """
        with _locked():
            _terminate(self.pid, self.pid_start, timeout)
            _save_instances([i for i in _load_instances() if i.get("pid") != self.pid])

    def as_record(self) -> dict[str, Any]:
        """The JSON-ready record kept in the state file."""
        return {
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "logdir": str(self.logdir),
            "host": self.host,
            "log_path": str(self.log_path) if self.log_path else None,
            "owner_pid": self.owner_pid,
            "owner_start": self.owner_start,
        }


def start_tensorboard(
    logdir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = START_TIMEOUT_S,
    owner: int | None = None,
) -> TensorBoardProcess:
    """Start TensorBoard on `logdir`, or reuse the one already serving it.

    A reused server keeps its owner, unless that owner is gone: then `owner`
    adopts it.

    Args:
        logdir: the folder of runs (each sub-folder with event files is a run).
        host: the address to listen on. Defaults to "127.0.0.1" (this machine only).
        port: the port wanted; if it is busy another is used and `notice` says
            so. Defaults to None (any free port).
        timeout: seconds to wait for it to answer. Defaults to 90.
        owner: the pid of the process that stops it when it exits (the
            dashboard passes its own; see `stop_owned_tensorboards`). Defaults
            to None (no owner: it runs until stopped).

    Returns:
        The server (`reused` tells whether it was already running).

    Raises:
        StudioError: if `logdir` is not a folder, or TensorBoard did not come up
            (the message has the end of its log).
        ValueError: if `port` or `host` is not valid.
    """
    folder = logdir_folder(logdir)
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"host must be an address such as '127.0.0.1', got {host!r}")
    if port is not None and (
        not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
    ):
        raise ValueError(f"port must be an int from 1 to 65535 or None, got {port!r}")
    with _locked():
        for record in _load_instances():
            if Path(record.get("logdir", "")) != folder:
                continue
            existing = _from_record(record)
            if existing.alive() and (port is None or existing.port == port):
                existing.reused = True
                if owner is not None and existing.orphaned():
                    _set_owner(existing, owner)
                return existing
            _terminate(existing.pid, existing.pid_start, STOP_TIMEOUT_S)
        process = _launch(folder, host, port, timeout)
        if owner is not None:
            process.owner_pid, process.owner_start = owner, process_start_ticks(owner)
        instances = [i for i in _load_instances() if Path(i.get("logdir", "")) != folder]
        _save_instances([*instances, process.as_record()])
        return process


def stop_tensorboard(logdir: str | os.PathLike[str]) -> bool:
    """Stop the TensorBoard serving `logdir`, if any.

    Args:
        logdir: the folder it serves.

    Returns:
        True if a live server was stopped, False if there was none.
    """
    folder = Path(logdir).expanduser().resolve()
    with _locked():
        return bool(_stop_where(lambda record: Path(record.get("logdir", "")) == folder))


def running_tensorboards() -> list[TensorBoardProcess]:
    """The TensorBoard servers this studio started that are still running."""
    with _locked():
        live = [p for p in map(_from_record, _load_instances()) if process_alive(p.pid, p.pid_start)]
        _save_instances([p.as_record() for p in live])
        return live


def stop_owned_tensorboards(owner: int) -> int:
    """Stop every server `owner` started or adopted (the dashboard calls it when it exits).

    Args:
        owner: the owning process's pid (matched with its start time, so a
            recycled pid owns nothing).

    Returns:
        How many servers were stopped.
    """
    owner_start = process_start_ticks(owner)
    with _locked():
        return len(_stop_where(lambda record: _owned_by(record, owner, owner_start)))


def reclaim_orphans(
    logdir: str | os.PathLike[str], *, owner: int
) -> tuple[list[TensorBoardProcess], list[TensorBoardProcess]]:
    """Find servers whose owner died: adopt the one serving `logdir`, stop the others.

    Args:
        logdir: the folder the new owner serves (its orphan is reused).
        owner: the new owner's pid.

    Returns:
        `(adopted, stopped)`.
    """
    folder = Path(logdir).expanduser().resolve()
    with _locked():
        adopted = [
            i
            for i in map(_from_record, _load_instances())
            if i.orphaned() and i.logdir == folder and i.alive()
        ]
        for instance in adopted:
            _set_owner(instance, owner)
        stopped = _stop_where(lambda record: _from_record(record).orphaned())
    return adopted, stopped


def _stop_where(match: Callable[[dict[str, Any]], bool]) -> list[TensorBoardProcess]:
    """Stop the recorded servers `match` picks and forget them (the caller holds the lock).

    Returns:
        Those that were still running.
    """
    kept, stopped = [], []
    for record in _load_instances():
        if not match(record):
            kept.append(record)
            continue
        instance = _from_record(record)
        if process_alive(instance.pid, instance.pid_start):
            stopped.append(instance)
        _terminate(instance.pid, instance.pid_start, STOP_TIMEOUT_S)
    _save_instances(kept)
    return stopped


def _owned_by(record: dict[str, Any], owner: int, owner_start: int | None) -> bool:
    return record.get("owner_pid") == owner and record.get("owner_start") in (owner_start, None)


def _set_owner(instance: TensorBoardProcess, owner: int) -> None:
    """Record `owner` for `instance` (the caller holds the lock)."""
    instance.owner_pid, instance.owner_start = owner, process_start_ticks(owner)
    records = [i for i in _load_instances() if i.get("pid") != instance.pid]
    _save_instances([*records, instance.as_record()])


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _from_record(record: dict[str, Any]) -> TensorBoardProcess:
    log_path = record.get("log_path")
    return TensorBoardProcess(
        url=str(record.get("url", "")),
        port=int(record.get("port", 0)),
        pid=int(record.get("pid", 0)),
        logdir=Path(record.get("logdir", "")),
        host=str(record.get("host", "127.0.0.1")),
        pid_start=_optional_int(record.get("pid_start")),
        log_path=Path(log_path) if log_path else None,
        owner_pid=_optional_int(record.get("owner_pid")),
        owner_start=_optional_int(record.get("owner_start")),
    )


def _state_path() -> Path:
    return paths.home_dir() / STATE_FILE


def _load_instances() -> list[dict[str, Any]]:
    try:
        data = json.loads(_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    instances = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(instances, list):
        return []
    return [i for i in instances if isinstance(i, dict) and isinstance(i.get("pid"), int)]


def _save_instances(instances: list[dict[str, Any]]) -> None:
    fsutil.atomic_write_json(_state_path(), {"instances": instances})


def _locked() -> contextlib.AbstractContextManager[None]:
    """One start/stop at a time, across threads and processes sharing the studio home."""
    return fsutil.file_lock(paths.home_dir() / LOCK_FILE)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _serves(host: str, port: int, logdir: Path) -> bool:
    """Whether a TensorBoard on host:port answers and serves `logdir` (so it is ours)."""
    try:
        with urllib.request.urlopen(
            _url(host, port) + "data/environment", timeout=HTTP_TIMEOUT_S
        ) as reply:
            info = json.loads(reply.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return isinstance(info, dict) and info.get("data_location") == str(logdir)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _launch(folder: Path, host: str, port: int | None, timeout: float) -> TensorBoardProcess:
    log_dir = paths.home_dir() / LOG_FOLDER
    log_dir.mkdir(parents=True, exist_ok=True)
    notice = None
    if port is not None and not ports.port_free(host, port):
        notice = f"port {port} was busy, so TensorBoard uses another"
        port = None
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    deadline = time.monotonic() + timeout
    for _attempt in range(PORT_ATTEMPTS):
        chosen = port if port is not None else ports.free_port(host)
        port = None  # a retry takes any free port
        log_path = log_dir / f"tensorboard-{chosen}.log"
        argv = [
            sys.executable, "-m", "tensorboard.main",
            "--logdir", str(folder),
            "--host", host,
            "--port", str(chosen),
            "--reload_interval", str(RELOAD_INTERVAL_S),
            # the Python loader: one process, no separate data-server binary to misbehave
            "--load_fast", "false",
            "--window_title", "Retrain Studio",
        ]  # fmt: skip
        log_path.unlink(missing_ok=True)  # one log per start, not appended to an old one
        proc = spawn_detached(argv, log_path=log_path, env=env)
        _children[proc.pid] = proc
        pid_start = process_start_ticks(proc.pid)
        while True:
            if proc.poll() is not None:
                tail = _log_tail(log_path)
                if any(marker in tail.lower() for marker in _PORT_BUSY_MARKERS):
                    notice = notice or f"port {chosen} was busy, so TensorBoard uses another"
                    break  # taken between our check and its bind: try another port
                raise StudioError(
                    f"TensorBoard stopped while starting (exit code {proc.returncode}); "
                    f"its log {log_path} ends with:\n{tail}"
                )
            if _serves(host, chosen, folder):
                return TensorBoardProcess(
                    url=_url(host, chosen),
                    port=chosen,
                    pid=proc.pid,
                    logdir=folder,
                    host=host,
                    pid_start=pid_start,
                    log_path=log_path,
                    notice=notice,
                )
            if time.monotonic() > deadline:
                _terminate(proc.pid, pid_start, STOP_TIMEOUT_S)
                proc.poll()
                raise StudioError(
                    f"TensorBoard did not answer within {timeout:.0f}s; its log {log_path} ends with:\n"
                    f"{_log_tail(log_path)}"
                )
            time.sleep(0.2)
    raise StudioError(
        f"TensorBoard found no free port after {PORT_ATTEMPTS} tries; close other servers and try again"
    )


def _terminate(pid: int, pid_start: int | None, timeout: float) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers (only if it is still ours)."""

    def alive() -> bool:
        _reap(pid)
        return process_alive(pid, pid_start)

    stop_group(pid, pid_start, terminate_grace_s=timeout, alive=alive)


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]
