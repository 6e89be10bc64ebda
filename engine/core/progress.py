"""Progress of long work, for the CLI bar and the dashboard alike.

Long operations (scanning a folder, computing bottlenecks, downloading,
training) take an optional `progress` callback and call it with a `Progress`
snapshot. `ProgressTracker` computes rate and time left; `TerminalBar` draws
the snapshots as one self-overwriting line on a terminal (or plain lines when
the output is not a terminal, so logs stay readable).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True)
class Progress:
    """A snapshot of long work.

    Args:
        phase: what is being done ("scan", "bottlenecks", "download", "train").
        done: units finished so far.
        total: units in all; 0 when unknown.
        elapsed_s: seconds since the work started.
        unit: what a unit is ("images", "bytes", "steps"). Defaults to "items".
        detail: extra figures for the phase (say, cached vs computed). Defaults to {}.
    """

    phase: str
    done: int
    total: int
    elapsed_s: float
    unit: str = "items"
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Share done, 0.0 to 1.0 (0.0 while the total is unknown)."""
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def rate(self) -> float:
        """Units per second so far (0.0 before any time has passed)."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate, or None when it cannot be told yet."""
        if self.total <= 0 or self.done <= 0 or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the derived figures included."""
        return {
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "elapsed_s": round(self.elapsed_s, 3),
            "unit": self.unit,
            "rate": round(self.rate, 3),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "detail": dict(self.detail),
        }


ProgressCallback = Callable[[Progress], None]


class ProgressTracker:
    """Counts units of one phase and reports `Progress` to a callback.

    Args:
        phase: the phase name.
        total: units in all (0 when unknown).
        callback: called with each snapshot; None makes the tracker silent.
        unit: what a unit is. Defaults to "items".
        min_interval_s: report at most this often, except the first and last
            update. Defaults to 0.1.
        clock: a monotonic clock, for tests. Defaults to `time.monotonic`.
    """

    def __init__(
        self,
        phase: str,
        total: int,
        callback: ProgressCallback | None,
        *,
        unit: str = "items",
        min_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.phase = phase
        self.total = total
        self.unit = unit
        self.done = 0
        self.detail: dict[str, Any] = {}
        self._callback = callback
        self._clock = clock
        self._start = clock()
        self._min_interval_s = min_interval_s
        self._last_report: float | None = None

    def snapshot(self) -> Progress:
        """The current state as a `Progress`."""
        return Progress(
            self.phase, self.done, self.total, self._clock() - self._start, self.unit, dict(self.detail)
        )

    def advance(self, n: int = 1, **detail: Any) -> None:
        """Count `n` more units done, update detail figures, and report if due."""
        self.done += n
        self.detail.update(detail)
        now = self._clock()
        finished = self.total > 0 and self.done >= self.total
        due = self._last_report is None or now - self._last_report >= self._min_interval_s
        if self._callback is not None and (due or finished):
            self._last_report = now
            self._callback(self.snapshot())

    def finish(self) -> Progress:
        """Report a final snapshot (whatever the interval) and return it."""
        snap = self.snapshot()
        if self._callback is not None:
            self._callback(snap)
        return snap


def format_duration(seconds: float | None) -> str:
    """`75.2` -> `"1:15"`, `3725` -> `"1:02:05"`, None -> `"?"`."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_progress(p: Progress, width: int = 24) -> str:
    """One line: phase, bar, counts, percent, rate and time left."""
    filled = round(p.fraction * width)
    bar = "#" * filled + "." * (width - filled)
    count = f"{p.done}/{p.total}" if p.total > 0 else f"{p.done}"
    pct = f" {p.fraction * 100:5.1f}%" if p.total > 0 else ""
    return (
        f"{p.phase:<11} [{bar}] {count} {p.unit}{pct}  "
        f"{p.rate:.1f} {p.unit}/s  {format_duration(p.elapsed_s)} elapsed, "
        f"{format_duration(p.eta_s)} left"
    )


class TerminalBar:
    """A progress callback that draws on a stream (stderr by default).

    On a terminal it redraws one line in place; otherwise it prints a line at
    most every `plain_interval_s` seconds, and always the last one.

    Args:
        stream: where to draw. Defaults to `sys.stderr`.
        plain_interval_s: seconds between lines when not a terminal. Defaults to 5.
    """

    def __init__(self, stream: TextIO | None = None, *, plain_interval_s: float = 5.0) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._plain_interval_s = plain_interval_s
        self._last_plain: dict[str, float] = {}

    def __call__(self, p: Progress) -> None:
        line = format_progress(p)
        finished = p.total > 0 and p.done >= p.total
        if self._tty:
            self._stream.write("\r" + line + ("\n" if finished else ""))
        else:
            last = self._last_plain.get(p.phase)
            if not finished and last is not None and p.elapsed_s - last < self._plain_interval_s:
                return
            self._last_plain[p.phase] = p.elapsed_s
            self._stream.write(line + "\n")
        self._stream.flush()
