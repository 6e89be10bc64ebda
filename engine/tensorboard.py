"""TensorBoard: one server process per logdir, and reading event files ourselves.

**The server.** `start_tensorboard` runs `python -m tensorboard.main` as a
detached subprocess on 127.0.0.1 and a port it chose free (bind port 0); if the
port is taken anyway (a race, or an old TensorBoard on 6006) it retries on
another, so "port already in use" never reaches the user. It is ready when it
answers `/data/environment` with our logdir, which also proves the server on
that port is ours. Live servers are recorded in `<home>/tensorboard.json`
(pid, its start time, port, logdir), so a second tab, the CLI or a restarted
app reuses the same one instead of starting another.

**The event files.** `inspect_logs` and `read_scalars` parse TFRecord event
files with TensorBoard's protobufs directly (no TensorFlow import, so the
dashboard stays light), keep everything (no reservoir sampling, unlike
`EventAccumulator`'s defaults that keep only 10 tensor points a tag), and read
each file incrementally: a file that grew is parsed from where the last call
stopped, so polling a live run every second costs only the new records.
TF2 scalars are tensor summaries whose plugin name ("scalars") is recorded
only on a tag's first record; the per-file parse state remembers it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import fsutil, paths
from engine.errors import StudioError
from engine.runs import process_alive, process_start_ticks

if TYPE_CHECKING:
    import pandas as pd

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

STATE_FILE = "tensorboard.json"
LOCK_FILE = "tensorboard.lock"
LOG_FOLDER = "tensorboard"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 5
RELOAD_INTERVAL_S = 5
HTTP_TIMEOUT_S = 2.0
_READ_CHUNK = 16 * 1024 * 1024  # event files with images can be large: parse them in slices
SCALAR_COLUMNS = ["run", "tag", "step", "value", "wall_time"]
# TensorBoard's own words when its port is taken (tensorboard/program.py).
_PORT_BUSY_MARKERS = ("could not bind to port", "already in use", "address already in use")
_PLUGIN_KINDS = {
    "scalars": "scalar",
    "histograms": "histogram",
    "images": "image",
    "audio": "audio",
    "text": "text",
    "hparams": "hparams",
    "graph_keras_model": "graph",
    "graph_run_metadata_graph": "graph",  # tf.summary.trace_export
    "graph_run_metadata": "run_metadata",
    "pr_curves": "pr_curve",
    "custom_scalars": "custom_scalar",
    "mesh": "mesh",
}
_VALUE_KINDS = {
    "simple_value": "scalar",
    "histo": "histogram",
    "obsolete_old_style_histogram": "histogram",
    "image": "image",
    "audio": "audio",
}

_lock = threading.RLock()
# tensor dtype enum -> (struct format, bytes) for scalars stored as raw tensor_content
_PACKED_SCALARS = {1: ("<f", 4), 2: ("<d", 8)}
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
        }


def start_tensorboard(
    logdir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = START_TIMEOUT_S,
) -> TensorBoardProcess:
    """Start TensorBoard on `logdir`, or reuse the one already serving it.

    Args:
        logdir: the folder of runs (each sub-folder with event files is a run).
        host: the address to listen on. Defaults to "127.0.0.1" (this machine only).
        port: the port wanted; if it is busy another is used and `notice` says
            so. Defaults to None (any free port).
        timeout: seconds to wait for it to answer. Defaults to 90.

    Returns:
        The server (`reused` tells whether it was already running).

    Raises:
        StudioError: if `logdir` is not a folder, or TensorBoard did not come up
            (the message has the end of its log).
        ValueError: if `port` or `host` is not valid.
    """
    folder = _existing_dir(logdir)
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
                return existing
            _terminate(existing.pid, existing.pid_start, STOP_TIMEOUT_S)
        process = _launch(folder, host, port, timeout)
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
    stopped = False
    with _locked():
        kept = []
        for record in _load_instances():
            if Path(record.get("logdir", "")) == folder:
                instance = _from_record(record)
                stopped = process_alive(instance.pid, instance.pid_start) or stopped
                _terminate(instance.pid, instance.pid_start, STOP_TIMEOUT_S)
            else:
                kept.append(record)
        _save_instances(kept)
    return stopped


def running_tensorboards() -> list[TensorBoardProcess]:
    """The TensorBoard servers this studio started that are still running."""
    with _locked():
        live = [p for p in map(_from_record, _load_instances()) if process_alive(p.pid, p.pid_start)]
        _save_instances([p.as_record() for p in live])
        return live


def _existing_dir(logdir: str | os.PathLike[str]) -> Path:
    if not isinstance(logdir, str | os.PathLike):
        raise StudioError(f"logdir must be a folder path, got {logdir!r}")
    folder = Path(logdir).expanduser().resolve()
    if not folder.is_dir():
        raise StudioError(
            f"logdir {str(logdir)!r} is not a folder; pass the runs folder or a run's tb/ folder "
            "(train a run first if there is none)"
        )
    return folder


def _from_record(record: dict[str, Any]) -> TensorBoardProcess:
    log_path = record.get("log_path")
    return TensorBoardProcess(
        url=str(record.get("url", "")),
        port=int(record.get("port", 0)),
        pid=int(record.get("pid", 0)),
        logdir=Path(record.get("logdir", "")),
        host=str(record.get("host", "127.0.0.1")),
        pid_start=record.get("pid_start") if isinstance(record.get("pid_start"), int) else None,
        log_path=Path(log_path) if log_path else None,
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


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One start/stop at a time, across threads and processes sharing the studio home."""
    with _lock:
        if fcntl is None:
            yield
            return
        home = paths.home_dir()
        home.mkdir(parents=True, exist_ok=True)
        with open(home / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield


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


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # the same option TensorBoard's server sets, so TIME_WAIT does not count as busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


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
    if port is not None and not _port_free(host, port):
        notice = f"port {port} was busy, so TensorBoard uses another"
        port = None
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    deadline = time.monotonic() + timeout
    for _attempt in range(PORT_ATTEMPTS):
        chosen = port if port is not None else _free_port(host)
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
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
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
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        _reap(pid)
        if not process_alive(pid, pid_start):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while process_alive(pid, pid_start) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]


# --------------------------------------------------------------------------- event files


@dataclass(frozen=True)
class TagInfo:
    """One tag of one run, as `tensorboard --inspect` lists it.

    Args:
        run: the folder holding the event files, relative to the logdir ("." for the logdir itself).
        tag: the tag ("accuracy", "graph" for a graph).
        kind: scalar, histogram, image, audio, text, hparams, graph, ... or the plugin's name.
        count: how many records.
        first_step: the smallest step.
        last_step: the largest step.
    """

    run: str
    tag: str
    kind: str
    count: int
    first_step: int
    last_step: int


@dataclass
class _FileState:
    """What has been parsed of one event file so far."""

    key: tuple[int, int]  # (device, inode): a replaced file starts over
    offset: int = 0
    plugins: dict[str, str] = field(default_factory=dict)
    tags: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # (tag, kind) -> [n, lo, hi]
    scalars: list[tuple[str, int, float, float]] = field(default_factory=list)
    damaged: int = 0
    frame: Any = None  # the scalars as a sorted DataFrame, built when first asked for
    frame_rows: int = -1  # how many scalars `frame` holds


_file_cache: dict[Path, _FileState] = {}
_cache_lock = threading.RLock()


def _event_files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # temp and trash folders
        found.extend(Path(root) / f for f in sorted(files) if "tfevents" in f)
    return found


def _records(buffer: bytes) -> Iterator[tuple[bytes, int]]:
    """TFRecords in `buffer`: (data, offset just after it); stops before a partial record.

    A record is: length (uint64 LE), its masked CRC (4 bytes), the data, the
    data's masked CRC (4 bytes). CRCs are not checked: a damaged record shows
    up as a protobuf that does not parse.
    """
    pos, size = 0, len(buffer)
    while pos + 12 <= size:
        (length,) = struct.unpack_from("<Q", buffer, pos)
        end = pos + 12 + length + 4
        if length > 1 << 31 or end > size:  # garbage, or still being written
            return
        yield buffer[pos + 12 : pos + 12 + length], end
        pos = end


@functools.cache
def _protos() -> tuple[Any, Any, Any]:
    """TensorBoard's Event message, protobuf's DecodeError and tensor_util (imported once, lazily)."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util

    return event_pb2.Event, DecodeError, tensor_util


def _update(state: _FileState, path: Path) -> None:
    chunk = _READ_CHUNK
    with open(path, "rb") as handle:
        while True:
            handle.seek(state.offset)
            buffer = handle.read(chunk)
            start, before = state.offset, state.offset
            for data, end in _records(buffer):
                state.offset = start + end
                _parse_record(state, data)
            if len(buffer) < chunk:
                return  # the end of the file (perhaps a record still being written)
            # a full chunk: go on; one record bigger than the chunk needs a bigger read
            chunk = _READ_CHUNK if state.offset > before else 2 * chunk


def _parse_record(state: _FileState, data: bytes) -> None:
    event_type, decode_error, tensor_util = _protos()
    try:
        event = event_type.FromString(data)
    except decode_error:  # a damaged record: skip it, keep reading
        state.damaged += 1
        return
    what = event.WhichOneof("what")
    if what == "graph_def":
        _count(state, "graph", "graph", event.step)
    elif what == "meta_graph_def":
        _count(state, "meta_graph", "graph", event.step)
    elif what == "tagged_run_metadata":
        _count(state, event.tagged_run_metadata.tag, "run_metadata", event.step)
    elif what == "summary":
        for value in event.summary.value:
            kind = _kind(state, value)
            _count(state, value.tag, kind, event.step)
            if kind == "scalar":
                number = _scalar(value, tensor_util)
                if number is not None:
                    state.scalars.append((value.tag, event.step, number, event.wall_time))


def _kind(state: _FileState, value: Any) -> str:
    plugin = value.metadata.plugin_data.plugin_name if value.HasField("metadata") else ""
    if plugin:
        state.plugins.setdefault(value.tag, plugin)
    oneof = value.WhichOneof("value")
    if oneof in _VALUE_KINDS:
        return _VALUE_KINDS[oneof]
    plugin = state.plugins.get(value.tag, "")
    return _PLUGIN_KINDS.get(plugin, plugin or "tensor")


def _scalar(value: Any, tensor_util: Any) -> float | None:
    if value.WhichOneof("value") == "simple_value":
        return float(value.simple_value)
    tensor = value.tensor
    # the common TF2 cases without building an ndarray: ~3x faster on a cold read
    packed = _PACKED_SCALARS.get(tensor.dtype)
    if packed is not None and not tensor.tensor_shape.dim and len(tensor.tensor_content) == packed[1]:
        return float(struct.unpack(packed[0], tensor.tensor_content)[0])
    if len(tensor.float_val) == 1:
        return float(tensor.float_val[0])
    if len(tensor.double_val) == 1:
        return float(tensor.double_val[0])
    try:
        array = tensor_util.make_ndarray(value.tensor)
        return float(array.item()) if array.size == 1 else None
    except (ValueError, TypeError):
        return None


def _count(state: _FileState, tag: str, kind: str, step: int) -> None:
    entry = state.tags.get((tag, kind))
    if entry is None:
        state.tags[(tag, kind)] = [1, step, step]
    else:
        entry[0] += 1
        entry[1] = min(entry[1], step)
        entry[2] = max(entry[2], step)


def _parsed(folder: Path) -> list[tuple[str, _FileState]]:
    """Every event file under `folder`, parsed up to its current end: (run, state)."""
    results = []
    with _cache_lock:
        for path in _event_files(folder):
            try:
                info = path.stat()
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            state = _file_cache.get(path)
            if state is None or state.key != key or info.st_size < state.offset:
                state = _file_cache[path] = _FileState(key=key)
            if info.st_size > state.offset:
                try:
                    _update(state, path)
                except OSError:
                    continue
            run = path.parent.relative_to(folder).as_posix()
            results.append((run, state))
    return results


def inspect_logs(logdir: str | os.PathLike[str]) -> list[TagInfo]:
    """The runs and tags under `logdir`, like `tensorboard --inspect`.

    Args:
        logdir: a folder holding event files, directly or in sub-folders (runs).

    Returns:
        One `TagInfo` per run and tag, sorted by run, kind and tag (empty if
        there are no event files).

    Raises:
        StudioError: if `logdir` is not a folder.
    """
    folder = _existing_dir(logdir)
    merged: dict[tuple[str, str, str], list[Any]] = {}
    for run, state in _parsed(folder):
        for (tag, kind), (count, lo, hi) in state.tags.items():
            entry = merged.setdefault((run, tag, kind), [0, lo, hi])
            entry[0] += count
            entry[1], entry[2] = min(entry[1], lo), max(entry[2], hi)
    infos = [TagInfo(run, tag, kind, n, lo, hi) for (run, tag, kind), (n, lo, hi) in merged.items()]
    return sorted(infos, key=lambda t: (t.run, t.kind, t.tag))


def read_scalars(logdir: str | os.PathLike[str]) -> pd.DataFrame:
    """Every scalar under `logdir` (TF1 simple values and TF2 scalar tensors alike), none sampled away.

    Cheap to call every second: each event file is parsed only from where
    the previous call stopped.

    Args:
        logdir: a folder holding event files, directly or in sub-folders (runs).

    Returns:
        A DataFrame with columns run, tag, step, value, wall_time, sorted by
        run, tag and step (empty, with those columns, if there are none).

    Raises:
        StudioError: if `logdir` is not a folder.
    """
    import pandas as pd

    folder = _existing_dir(logdir)
    with _cache_lock:  # a frame is built from a file state that another poll may be extending
        frames = [_scalar_frame(run, state) for run, state in _parsed(folder)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(SCALAR_COLUMNS, _DTYPES, strict=True)}
        )
    if len(frames) == 1:
        return frames[0].copy()
    runs = [f["run"].iat[0] for f in frames]
    frame = pd.concat(frames, ignore_index=True)
    if len(set(runs)) != len(runs) or runs != sorted(runs):
        # several event files in one run (a restarted writer): merge them by step
        frame = frame.sort_values(["run", "tag", "step", "wall_time"], kind="stable", ignore_index=True)
    return frame


_DTYPES = ("object", "object", "int64", "float64", "float64")


def _scalar_frame(run: str, state: _FileState) -> pd.DataFrame:
    """One event file's scalars, sorted by tag and step; rebuilt only when the file grew."""
    import numpy as np
    import pandas as pd

    if state.frame is not None and state.frame_rows == len(state.scalars):
        return state.frame
    tags, steps, values, walls = zip(*state.scalars, strict=True) if state.scalars else ((), (), (), ())
    tag_array = np.array(tags, dtype=object)
    step_array = np.array(steps, dtype=np.int64)
    wall_array = np.array(walls, dtype=np.float64)
    codes, _ = pd.factorize(tag_array, sort=True)
    order = np.lexsort((wall_array, step_array, codes))
    state.frame = pd.DataFrame(
        {
            "run": np.full(len(order), run, dtype=object),
            "tag": tag_array[order],
            "step": step_array[order],
            "value": np.array(values, dtype=np.float64)[order],
            "wall_time": wall_array[order],
        }
    )
    state.frame_rows = len(state.scalars)
    return state.frame
