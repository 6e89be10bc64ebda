"""Tables and figures built from data, without Streamlit.

Plain functions (a pandas table or a plotly figure from engine results), so
the caches (`ui.cached`), the widgets (`ui.render`) and tests all use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

SPLIT_COLOURS = {"train": "#2E7D32", "validation": "#F9A825", "test": "#1565C0"}
# report.json keys of the models a run scores on its test split, in display order.
SCORED_MODELS = {
    "keras": "Keras (model.keras)",
    "saved_model": "SavedModel",
    "tflite": "TFLite float",
    "tflite_int8": "TFLite int8",
    "onnx": "ONNX",
}
STEP_COLUMNS = [
    "step",
    "train_accuracy",
    "cross_entropy",
    "validation_accuracy",
    "validation_cross_entropy",
    "learning_rate",
    "images_per_s",
    "elapsed_s",
]


def steps_frame(events: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The `step` events of events.jsonl as a table, one row per step (see STEP_COLUMNS)."""
    rows = [e for e in events if e.get("event") == "step"]
    frame = pd.DataFrame(rows)
    for column in STEP_COLUMNS:
        if column not in frame:
            frame[column] = pd.Series(dtype="float64")
    return frame[STEP_COLUMNS]


def split_counts_figure(classes: Sequence[Any]) -> go.Figure:
    """A stacked bar per class, one colour per split (plain graph objects: plotly express
    takes ten times as long to build the same figure, on every rerun of the Dataset page).

    Args:
        classes: `ClassInfo` rows (`label`, `train`, `validation`, `test`).

    Returns:
        The figure.
    """
    labels = [c.label for c in classes]
    figure = go.Figure(
        [
            go.Bar(name=split, x=labels, y=[getattr(c, split) for c in classes], marker_color=colour)
            for split, colour in SPLIT_COLOURS.items()
        ]
    )
    figure.update_layout(
        barmode="stack",
        height=320,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis_title="class",
        yaxis_title="photos",
    )
    return figure


def probability_figure(top_k: Sequence[tuple[str, float]]) -> go.Figure:
    """Horizontal bars of the top-k probabilities, best on top, on a fixed 0-1 axis.

    Args:
        top_k: `(label, probability)` pairs, best first.

    Returns:
        The figure.
    """
    labels = [label for label, _ in top_k][::-1]
    values = [float(p) for _, p in top_k][::-1]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            text=[f"{v:.1%}" for v in values],
            textposition="auto",
            marker_color=SPLIT_COLOURS["train"],
        )
    )
    figure.update_layout(
        xaxis={"range": [0, 1.04], "tickformat": ".0%", "dtick": 0.25},
        height=60 + 32 * len(labels),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    return figure


def curves_figure(
    frames: pd.DataFrame | Mapping[str, pd.DataFrame], columns: Sequence[str], title: str
) -> go.Figure:
    """Lines of `columns` against `step`, for one run's table or several runs' (overlaid).

    Missing values are skipped, so the sparse validation points join up.

    Args:
        frames: a step table (`steps_frame`), or `{run name: step table}`.
        columns: the columns to draw.
        title: the chart title.

    Returns:
        The figure.
    """
    named = {"": frames} if isinstance(frames, pd.DataFrame) else dict(frames)
    figure = go.Figure()
    for run, frame in named.items():
        for column in columns:
            if column in frame:
                points = frame[["step", column]].dropna()
                figure.add_trace(
                    go.Scatter(
                        x=points["step"],
                        y=points[column],
                        mode="lines+markers",
                        name=f"{run} {column}".strip(),
                    )
                )
    figure.update_layout(
        title=title,
        height=300,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis_title="step",
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def confusion_figure(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> go.Figure:
    """A confusion-matrix heatmap: rows are the true class, columns the predicted one.

    Args:
        labels: class names in output order.
        matrix: counts, `matrix[true][predicted]`.

    Returns:
        The figure.
    """
    figure = px.imshow(
        matrix,
        x=list(labels),
        y=list(labels),
        text_auto=True,
        color_continuous_scale="Greens",
        labels={"x": "predicted", "y": "true", "color": "photos"},
    )
    figure.update_layout(height=120 + 40 * len(labels), margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return figure


def clickable_confusion_figure(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> go.Figure:
    """`confusion_figure` with a near-invisible marker on every cell, so a click selects the cell.

    Plotly selections pick points of scatter traces, not heatmap cells; each
    marker carries its cell as `(true, predicted)` in `customdata`.
    """
    figure = confusion_figure(labels, matrix)
    cells = [(t, p) for t in labels for p in labels]
    figure.add_trace(
        go.Scatter(
            x=[p for _, p in cells],
            y=[t for t, _ in cells],
            customdata=[[t, p] for t, p in cells],
            mode="markers",
            marker={"size": 28, "opacity": 0.01, "symbol": "square"},
            hovertemplate="true %{y}, predicted %{x}<extra>click to see the photos</extra>",
            showlegend=False,
        )
    )
    figure.update_layout(clickmode="event+select", dragmode=False)
    return figure


def selected_cell(event: Any) -> tuple[str, str] | None:
    """The `(true, predicted)` cell a `st.plotly_chart` selection picked, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or []:
        data = point.get("customdata")
        if isinstance(data, list | tuple) and len(data) == 2:
            return str(data[0]), str(data[1])
    return None


def scored_models_frame(report: dict[str, Any]) -> pd.DataFrame:
    """The Keras model and every export, side by side: test accuracy, size, single-photo latency.

    Args:
        report: the run's report.json.

    Returns:
        One row per scored model, in `SCORED_MODELS` order; models without figures are left out.
    """
    figures = {"keras": report.get("keras", {}), **report.get("exports", {})}
    rows = [
        {
            "model": name,
            "test accuracy": figures[key]["accuracy"],
            "size (MB)": figures[key]["size_bytes"] / 1e6 if figures[key].get("size_bytes") else None,
            "latency (ms, 1 photo)": figures[key].get("latency_ms"),
            "agrees with the run's model": figures[key].get("top1_agreement"),
        }
        for key, name in SCORED_MODELS.items()
        if figures.get(key, {}).get("accuracy") is not None
    ]
    columns = [
        "model",
        "test accuracy",
        "size (MB)",
        "latency (ms, 1 photo)",
        "agrees with the run's model",
    ]
    return pd.DataFrame(rows, columns=columns)


def time_left(step: dict[str, Any]) -> float | None:
    """Seconds left at the rate so far, from a step event (None before it can be told)."""
    done, total, elapsed = step.get("step"), step.get("total_steps"), step.get("elapsed_s")
    if not done or not total or not elapsed:
        return None
    return max(0.0, (total - done) * elapsed / done)


def label_order_figure(curve: Mapping[str, Any]) -> go.Figure:
    """Test accuracy against photos labelled, in ActiveLab order and in random order (`order_curve`)."""
    figure = go.Figure()
    for name, column, colour in (
        ("ActiveLab order", "activelab", "#2E7D32"),
        ("random order", "random", "#9E9E9E"),
    ):
        figure.add_trace(
            go.Scatter(
                x=list(curve["labelled"]),
                y=list(curve[column]),
                name=name,
                mode="lines+markers",
                line={"color": colour},
            )
        )
    figure.update_layout(
        xaxis_title="photos labelled",
        yaxis_title="test accuracy",
        yaxis_tickformat=".0%",
        height=300,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": 1.15},
    )
    return figure
