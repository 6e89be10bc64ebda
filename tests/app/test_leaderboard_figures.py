"""ui.leaderboard: the Pareto front, the table's order and the scatter, from leaderboard rows."""

from __future__ import annotations

from typing import Any

from ui.leaderboard import leaderboard_figure, leaderboard_frame, pareto_front


def row(name: str, accuracy: float | None, latency: float | None, size: int = 10_000_000, **extra: Any):
    return {"candidate": name, "test_accuracy": accuracy, "latency_ms": latency, "size_bytes": size,
            "int8_accuracy_change": -0.01, **extra}  # fmt: skip


ROWS = [
    row("fast", 0.80, 5.0, 8_000_000),
    row("middle", 0.90, 10.0),
    row("dominated", 0.85, 12.0),  # slower and worse than middle
    row("best", 0.95, 20.0, 20_000_000),
    row("tied_slower", 0.95, 25.0),  # as accurate as best, but slower
    row("broken", None, None, error="converter exploded"),
]


def test_the_pareto_front_keeps_what_nothing_beats_on_both_fastest_first() -> None:
    assert pareto_front(ROWS) == ["fast", "middle", "best"]
    assert pareto_front([row("a", 0.9, 10.0), row("b", 0.9, 10.0)]) == ["a", "b"]  # equals beat nothing
    assert pareto_front([]) == []


def test_the_table_is_sorted_by_accuracy_then_speed_with_failures_last() -> None:
    frame = leaderboard_frame(ROWS)
    assert list(frame["candidate"]) == ["best", "tied_slower", "middle", "dominated", "fast", "broken"]
    assert frame.loc[0, "float MB"] == 20.0 and frame.loc[0, "int8 change (points)"] == -1.0
    assert frame.loc[5, "error"] == "converter exploded"
    assert "error" not in leaderboard_frame(ROWS[:2]).columns  # no failure: no error column


def test_the_scatter_joins_the_front_and_sizes_markers_by_model_size() -> None:
    figure = leaderboard_figure(ROWS)
    front, others = figure.data
    assert (front.name, list(front.text)) == ("Pareto front", ["fast", "middle", "best"])
    assert list(front.x) == [5.0, 10.0, 20.0] and list(front.y) == [0.80, 0.90, 0.95]
    assert "lines" in front.mode and "lines" not in others.mode
    assert sorted(others.text) == ["dominated", "tied_slower"]  # the failure is not drawn
    assert front.marker.sizemode == "area" and list(front.marker.size) == [
        8_000_000,
        10_000_000,
        20_000_000,
    ]
