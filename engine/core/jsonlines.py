"""Append-only JSON-lines files: one JSON object a line, followed from a byte offset.

A run's `events.jsonl` is one; so is any journal of actions. Each line is
written with a single `write` on an `O_APPEND` descriptor, so a reader sees
either none of a line or all of it; `read_lines` returns only complete lines
and the offset to read from next, leaving a line still being written for the
next call. A line that is not a JSON object (a torn write after a crash) is
passed over, never fatal; a writer that finds the file ending in a torn line
(`cut_torn_tail`) moves the file aside and goes on from its last whole line,
and a line whose write fails (a full disk) is taken back.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from engine.core import heal
from engine.core.fsutil import atomic_write_bytes

# Enough of the end of a file to find its last records cheaply.
TAIL_BYTES = 16384


def append_line(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append `record` as one JSON line to `path` (created, with its folder, if missing).

    Args:
        path: the file.
        record: a JSON-ready dict (values it cannot encode are written as text).
    """
    line = (json.dumps(record, default=str, allow_nan=True) + "\n").encode("utf-8")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        written = 0
        try:
            while written < len(line):  # one write, except on odd file systems or a full disk
                written += os.write(fd, line[written:])
        except OSError:
            if written:  # a full disk: take the torn line back rather than leave half of it
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def cut_torn_tail(path: str | os.PathLike[str], *, what: str) -> heal.Damage | None:
    """Heal a file whose last line was cut off (a crash mid-write): keep its whole lines.

    The file is moved aside as it is (`engine.core.heal`, not announced) and a
    copy holding only its complete lines takes its place, so a follower's byte
    offset stays valid and the next line appended is not glued to the torn one.

    Args:
        path: the JSON-lines file.
        what: what it is, for the message ("the run's events file").

    Returns:
        The `Damage`, or None when the file is missing, empty or whole.
    """
    target = Path(path)
    try:
        with open(target, "rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            if end == 0:
                return None
            handle.seek(end - 1)
            if handle.read(1) == b"\n":
                return None
            handle.seek(0)
            data = handle.read()
    except OSError:
        return None
    keep = data.rfind(b"\n") + 1
    damage = heal.move_aside(
        target, what=what, reason=f"its last line is cut off ({len(data) - keep} bytes)", announce=False
    )
    atomic_write_bytes(target, data[:keep])
    return damage


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects of the lines in `data`; other lines are passed over."""
    records = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_lines(path: str | os.PathLike[str], offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete records after byte `offset` of `path`, and the offset to read from next.

    Args:
        path: the file (a missing file has no records yet).
        offset: where the previous call stopped. Defaults to 0 (the start).

    Returns:
        (records, new_offset).

    Raises:
        ValueError: if `offset` is not an int >= 0.
    """
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"offset must be an int >= 0, got {offset!r}")
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    return parse_lines(chunk[: end + 1]), offset + end + 1


def read_tail(path: str | os.PathLike[str], size: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The records in the last `size` bytes of `path` (the first, cut line is passed over).

    Returns:
        The records, oldest first; [] when the file is missing.
    """
    try:
        with open(path, "rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, end - size))
            tail = handle.read()
    except OSError:
        return []
    return parse_lines(tail)
