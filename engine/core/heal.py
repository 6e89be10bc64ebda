"""Damaged caches and run files heal themselves: moved aside, reported, rebuilt.

A crash, a full disk or a stray editor can leave a file the studio wrote
truncated or full of garbage: the bottleneck database (and its `-wal` and
`-shm` files), the scan cache, a run's `status.json`, the last line of a run's
`events.jsonl`. Whoever reads such a file and finds it damaged calls
`move_aside`: the file is renamed to `<name>.damaged-<YYYYmmdd-HHMMSS>` in its
own folder (never deleted, so nothing is lost and it can be examined), the
damage is reported, and the owner rebuilds the file from scratch.

Reports go to every callback registered with `listening` (a training registers
one for its duration and records each damage in its run folder: `train.log`,
the `warnings` of `status.json`, a `warning` event), or, when none listens, to
the `engine.heal` logger as a warning (shown on stderr).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DAMAGED_MARK = ".damaged-"

logger = logging.getLogger("engine.heal")

_listeners: list[Callable[[Damage], None]] = []
_listeners_guard = threading.Lock()


@dataclass(frozen=True)
class Damage:
    """A damaged file that was moved aside.

    Attributes:
        what: what the file is, for people ("the bottleneck cache").
        path: where it was.
        reason: what was wrong with it ("database disk image is malformed").
        moved_to: where it (and its companion files) went.
    """

    what: str
    path: str
    reason: str
    moved_to: tuple[str, ...] = field(default_factory=tuple)

    @property
    def message(self) -> str:
        """One line saying what happened and that nothing was lost."""
        where = f"moved aside to {self.moved_to[0]}" if self.moved_to else "it was already gone"
        return f"{self.what} {self.path} was damaged ({self.reason}); {where} and rebuilt"

    def as_dict(self) -> dict[str, object]:
        """The details as a JSON-ready dict (`what`, `path`, `reason`, `moved_to`); `message` apart."""
        return {
            "what": self.what,
            "path": self.path,
            "reason": self.reason,
            "moved_to": list(self.moved_to),
        }


def damaged_name(path: Path, stamp: str | None = None) -> Path:
    """A free `<name>.damaged-<time>[-N]` path beside `path`.

    Args:
        path: the damaged file.
        stamp: the time part. Defaults to now, as YYYYmmdd-HHMMSS.

    Returns:
        A path that does not exist yet.
    """
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}{DAMAGED_MARK}{stamp}")
    n = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}{DAMAGED_MARK}{stamp}-{n}")
        n += 1
    return candidate


def move_aside(
    path: str | os.PathLike[str],
    *,
    what: str,
    reason: str,
    companions: Sequence[str] = (),
    announce: bool = True,
) -> Damage:
    """Rename a damaged file (and its companions) to `<name>.damaged-<time>`, and report it.

    Args:
        path: the damaged file.
        what: what it is, for the message ("the bottleneck cache").
        reason: what is wrong with it.
        companions: suffixes of files that belong with it and go too
            (SQLite's "-wal" and "-shm"). Defaults to ().
        announce: report it to the logger and the listeners; a caller that
            records the damage itself passes False. Defaults to True.

    Returns:
        The `Damage`.

    Raises:
        OSError: a file could not be renamed (its folder is read-only).
    """
    source = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved: list[str] = []
    for suffix in ("", *companions):
        original = source.with_name(source.name + suffix)
        if not original.exists() and not original.is_symlink():
            continue
        target = damaged_name(original, stamp)
        os.replace(original, target)
        moved.append(str(target))
    damage = Damage(what, str(source), reason, tuple(moved))
    if announce:
        report(damage)
    return damage


def report(damage: Damage) -> None:
    """Tell the listeners about `damage`, or log a warning when none listens.

    A listener's failure is logged, never raised: the file is healed either way.
    """
    with _listeners_guard:
        listeners = list(_listeners)
    # A listener records it (a training: in its run folder); otherwise stderr shows it.
    logger.log(logging.INFO if listeners else logging.WARNING, "%s", damage.message)
    for listener in listeners:
        try:
            listener(damage)
        except Exception:  # a listener must never turn a healed file into a failure
            logger.exception("a damage listener failed")


@contextlib.contextmanager
def listening(callback: Callable[[Damage], None]) -> Iterator[None]:
    """Within the block, `callback` is called with every `Damage` reported in this process.

    Args:
        callback: gets each `Damage`.

    Yields:
        None.
    """
    with _listeners_guard:
        _listeners.append(callback)
    try:
        yield
    finally:
        with _listeners_guard:
            _listeners.remove(callback)


def read_json_object(path: str | os.PathLike[str], *, what: str) -> tuple[dict, Damage | None]:
    """A file's JSON object; a file that holds anything else is moved aside (not announced).

    For files the studio writes atomically and then rewrites in full (a run's
    `status.json`): the caller writes a fresh one and records the damage itself.

    Args:
        path: the file.
        what: what it is, for the message ("the run's status file").

    Returns:
        `(object, None)`; `({}, None)` when the file is missing or cannot be
        read; `({}, damage)` when it was damaged and moved aside.
    """
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError:
        return {}, None
    try:
        value = json.loads(data)
    except ValueError:
        reason = "empty" if not data.strip() else f"not JSON ({len(data)} bytes)"
    else:
        if isinstance(value, dict):
            return value, None
        reason = f"a JSON {type(value).__name__}, not an object"
    try:
        return {}, move_aside(source, what=what, reason=reason, announce=False)
    except OSError:
        return {}, None  # a read-only folder: the caller's write will say so
