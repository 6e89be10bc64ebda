"""engine.core.progress: rates, time left, the terminal bar."""

from __future__ import annotations

import io

import pytest

from engine.core.progress import Progress, ProgressTracker, TerminalBar, format_duration


def test_progress_reports_rate_and_time_left() -> None:
    now = [100.0]
    seen: list[Progress] = []
    tracker = ProgressTracker("scan", 10, seen.append, unit="images", clock=lambda: now[0])
    now[0] = 102.0
    tracker.advance(4, cached=1)
    assert seen[-1].done == 4
    assert seen[-1].rate == pytest.approx(2.0)
    assert seen[-1].eta_s == pytest.approx(3.0)
    assert seen[-1].detail == {"cached": 1}
    now[0] = 102.05
    tracker.advance(1)  # within min interval: not reported
    assert len(seen) == 1
    now[0] = 105.0
    tracker.advance(5)  # finished: always reported
    assert seen[-1].fraction == 1.0 and seen[-1].eta_s == 0.0


def test_terminal_bar_prints_counts_and_time_left_on_plain_stream() -> None:
    out = io.StringIO()
    bar = TerminalBar(out, plain_interval_s=0)
    bar(Progress("bottlenecks", 30, 120, 3.0, unit="images"))
    line = out.getvalue()
    assert "30/120 images" in line and "25.0%" in line and "0:09 left" in line


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "?"), (5, "0:05"), (75.2, "1:15"), (3725, "1:02:05")]
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
