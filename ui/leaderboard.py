"""The leaderboard's table, Pareto front and scatter, built without Streamlit.

Rows are a sweep's `leaderboard.json` rows (`engine.train.sweep`): one per
candidate, with its test accuracy, macro-F1, sizes, latency and int8's
accuracy change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

TABLE_COLUMNS = [
    "candidate",
    "kind",
    "test accuracy",
    "macro-F1",
    "float MB",
    "int8 MB",
    "ms / photo",
    "int8 change (points)",
    "L2",
    "error",
]
FRONT_COLOUR = "#C62828"
OTHER_COLOUR = "#1565C0"
# The largest marker's diameter in pixels (marker area follows the float model's size).
MAX_MARKER_PX = 44


def _mb(value: Any) -> float | None:
    return value / 1e6 if isinstance(value, int | float) else None


def _points(change: Any) -> float | None:
    return round(change * 100, 2) if isinstance(change, int | float) else None


def leaderboard_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a table, highest test accuracy first (then the faster), failures last.

    Args:
        rows: leaderboard rows.

    Returns:
        A DataFrame with `TABLE_COLUMNS` (without `error` when nothing failed).
    """
    frame = pd.DataFrame(
        [
            {
                "candidate": row.get("candidate"),
                "kind": row.get("kind"),
                "test accuracy": row.get("test_accuracy"),
                "macro-F1": row.get("macro_f1"),
                "float MB": _mb(row.get("size_bytes")),
                "int8 MB": _mb(row.get("int8_size_bytes")),
                "ms / photo": row.get("latency_ms"),
                "int8 change (points)": _points(row.get("int8_accuracy_change")),
                "L2": row.get("l2"),
                "error": row.get("error"),
            }
            for row in rows
        ],
        columns=TABLE_COLUMNS,
    )
    if not frame["error"].notna().any():
        frame = frame.drop(columns="error")
    return frame.sort_values(
        ["test accuracy", "ms / photo"], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)


def _scored(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        row
        for row in rows
        if not row.get("error")
        and row.get("test_accuracy") is not None
        and row.get("latency_ms") is not None
    ]


def pareto_front(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The candidates no other beats on both accuracy and latency, fastest first.

    A candidate is on the front when no other one is at least as accurate and
    at least as fast, and strictly better on one of the two.

    Args:
        rows: leaderboard rows (failed ones are left out).

    Returns:
        The names on the front, by latency.
    """
    scored = _scored(rows)

    def beaten(row: dict[str, Any]) -> bool:
        a, t = row["test_accuracy"], row["latency_ms"]
        return any(
            o["test_accuracy"] >= a
            and o["latency_ms"] <= t
            and (o["test_accuracy"] > a or o["latency_ms"] < t)
            for o in scored
            if o is not row
        )

    front = [row for row in scored if not beaten(row)]
    return [row["candidate"] for row in sorted(front, key=lambda r: r["latency_ms"])]


def leaderboard_figure(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Test accuracy against LiteRT latency, marker area = float model size, the Pareto front joined.

    Args:
        rows: leaderboard rows.

    Returns:
        The figure: trace "Pareto front" (the front's candidates, joined by a line) and
        trace "other candidates".
    """
    scored = _scored(rows)
    front = pareto_front(rows)
    largest = max((row.get("size_bytes") or 0 for row in scored), default=0) or 1
    figure = go.Figure()
    for name, members, colour, mode in (
        ("Pareto front", [r for c in front for r in scored if r["candidate"] == c], FRONT_COLOUR, "lines+markers+text"),
        ("other candidates", [r for r in scored if r["candidate"] not in front], OTHER_COLOUR, "markers+text"),
    ):  # fmt: skip
        figure.add_trace(
            go.Scatter(
                x=[r["latency_ms"] for r in members],
                y=[r["test_accuracy"] for r in members],
                mode=mode,
                name=name,
                text=[r["candidate"] for r in members],
                textposition="top center",
                cliponaxis=False,
                line={"color": colour, "dash": "dot"},
                marker={
                    "color": colour,
                    "size": [r.get("size_bytes") or 0 for r in members],
                    "sizemode": "area",
                    "sizeref": largest / MAX_MARKER_PX**2,
                    "sizemin": 6,
                    "opacity": 0.8,
                },
                customdata=[[_mb(r.get("size_bytes")) or 0.0] for r in members],
                hovertemplate="%{text}<br>%{y:.1%} test accuracy<br>%{x:.1f} ms / photo"
                "<br>%{customdata[0]:.2f} MB (float)<extra></extra>",
            )
        )
    figure.update_layout(
        title="Accuracy against speed (marker area: model size)",
        xaxis_title="LiteRT latency per photo (ms)",
        yaxis={"title": "test accuracy", "tickformat": ".0%"},
        height=420,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure
