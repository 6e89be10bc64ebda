"""Following a run's events.jsonl from a page, a little more each poll.

The Train page's fragment reruns about every second; each time it reads only
the bytes appended since the last poll (`RunDir.read_events(offset)`), and
keeps what it has seen in this tab's session state, keyed by run id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from engine.core.rundir import RunDir
from ui.figures import steps_frame

_KEY = "followed_runs"


@dataclass
class Followed:
    """What a tab has read of one run's events.

    Attributes:
        offset: the byte offset to poll from next.
        steps: the step events, in order.
        phase: the latest phase ("scan", "bottlenecks", "train", ...), or "".
        progress: the latest progress event (e.g. the bottleneck phase's), or None.
        result: the result event (test accuracy), or None.
        warnings: the `warning` events (a cache or run file the trainer found
            damaged and rebuilt), in order.
    """

    offset: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    phase: str = ""
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def absorb(self, events: list[dict[str, Any]]) -> None:
        """Take in newly read events."""
        for event in events:
            kind = event.get("event")
            if kind == "step":
                self.steps.append(event)
            elif kind == "phase":
                self.phase = str(event.get("phase", ""))
            elif kind == "progress":
                self.progress = event
            elif kind == "result":
                self.result = event
            elif kind == "warning":
                self.warnings.append(event)

    @property
    def last_step(self) -> dict[str, Any] | None:
        """The newest step event, or None before training starts."""
        return self.steps[-1] if self.steps else None

    def frame(self) -> pd.DataFrame:
        """The step events as a table (`ui.figures.steps_frame`)."""
        return steps_frame(self.steps)


def follow(run: RunDir) -> Followed:
    """Read what `run` appended since this tab's last poll.

    Args:
        run: the run being followed.

    Returns:
        Everything this tab has read of the run so far.
    """
    seen: dict[str, Followed] = st.session_state.setdefault(_KEY, {})
    followed = seen.setdefault(run.run_id, Followed())
    events, followed.offset = run.read_events(followed.offset)
    followed.absorb(events)
    return followed
