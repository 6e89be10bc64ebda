"""Reading TensorBoard event files ourselves, without TensorFlow.

`inspect_logs` and `read_scalars` parse TFRecord event files with
TensorBoard's protobufs directly (no TensorFlow import, so the dashboard stays
light), keep everything (no reservoir sampling, unlike `EventAccumulator`'s
defaults that keep only 10 tensor points a tag), and read each file
incrementally: a file that grew is parsed from where the last call stopped,
so polling a live run every second costs only the new records. TF2 scalars
are tensor summaries whose plugin name ("scalars") is recorded only on a
tag's first record; the per-file parse state remembers it.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.core.errors import StudioError

if TYPE_CHECKING:
    import pandas as pd

_READ_CHUNK = 16 * 1024 * 1024  # event files with images can be large: parse them in slices
SCALAR_COLUMNS = ["run", "tag", "step", "value", "wall_time"]
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

# tensor dtype enum -> (struct format, bytes) for scalars stored as raw tensor_content
_PACKED_SCALARS = {1: ("<f", 4), 2: ("<d", 8)}


def logdir_folder(logdir: str | os.PathLike[str]) -> Path:
    """`logdir` as an absolute folder, or a clear error.

    Args:
        logdir: a folder of runs or a run's tb/ folder.

    Returns:
        The resolved folder.

    Raises:
        StudioError: it is not a folder.
    """
    if not isinstance(logdir, str | os.PathLike):
        raise StudioError(f"logdir must be a folder path, got {logdir!r}")
    folder = Path(logdir).expanduser().resolve()
    if not folder.is_dir():
        raise StudioError(
            f"logdir {str(logdir)!r} is not a folder; pass the runs folder or a run's tb/ folder "
            "(train a run first if there is none)"
        )
    return folder


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
    folder = logdir_folder(logdir)
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

    folder = logdir_folder(logdir)
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
