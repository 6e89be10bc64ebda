"""Reusable `render_*` helpers: each draws one piece of UI and returns what the user chose.

Figure builders (`*_figure`) are plain functions of data, so tests can check
them without a page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from ui import cached, state

SPLIT_DEFAULT = (10, 10)
SPLIT_COLOURS = {"train": "#2E7D32", "validation": "#F9A825", "test": "#1565C0"}
CHART_CONFIG = {"displaylogo": False}
# One row of thumbnails per class on a laptop screen.
SAMPLES_PER_CLASS = 6


def render_split_inputs() -> tuple[int, int]:
    """Validation and test percentage inputs; the values are shared by the Dataset and Train pages.

    Returns:
        `(validation_percentage, testing_percentage)`.
    """
    state.remember_default("validation_pct", SPLIT_DEFAULT[0])
    state.remember_default("testing_pct", SPLIT_DEFAULT[1])
    left, right = st.columns(2)
    validation = left.number_input(
        "Validation %",
        min_value=0,
        max_value=50,
        step=5,
        key="validation_pct",
        help="Share of each class used to check the model during training.",
    )
    testing = right.number_input(
        "Test %",
        min_value=0,
        max_value=50,
        step=5,
        key="testing_pct",
        help="Share of each class held back for the final accuracy.",
    )
    return int(validation), int(testing)


def progress_callback(label: str) -> Callable[[Any], None]:
    """A `progress` callback for engine calls that draws an `st.progress` bar.

    Args:
        label: what is being done ("Downloading flower_photos").

    Returns:
        A callable taking `engine.progress.Progress` snapshots.
    """
    from engine.progress import format_duration

    bar = st.progress(0.0, text=label)

    def _update(snapshot: Any) -> None:
        count = f"{snapshot.done}/{snapshot.total}" if snapshot.total else str(snapshot.done)
        bar.progress(
            snapshot.fraction,
            text=f"{label}: {count} {snapshot.unit}, {format_duration(snapshot.eta_s)} left",
        )

    return _update


def split_counts_frame(classes: Sequence[Any]) -> pd.DataFrame:
    """Long table `label, split, count` from `ClassInfo` rows."""
    rows = [
        {"label": c.label, "split": split, "count": getattr(c, split)}
        for c in classes
        for split in ("train", "validation", "test")
    ]
    return pd.DataFrame(rows, columns=["label", "split", "count"])


def split_counts_figure(classes: Sequence[Any]) -> go.Figure:
    """A stacked bar per class, one colour per split."""
    frame = split_counts_frame(classes)
    figure = px.bar(
        frame,
        x="label",
        y="count",
        color="split",
        color_discrete_map=SPLIT_COLOURS,
        labels={"label": "class", "count": "photos"},
    )
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend_title=None)
    return figure


def render_sample_grid(dataset: Any, *, per_class: int = SAMPLES_PER_CLASS, max_side: int = 120) -> None:
    """One row of thumbnails per class (cached), with the class name and count above.

    Args:
        dataset: an `engine.datasets.Dataset`.
        per_class: thumbnails per class. Defaults to SAMPLES_PER_CLASS.
        max_side: thumbnail size in pixels. Defaults to 120.
    """
    by_label: dict[str, list[Any]] = {}
    for record in dataset.images:
        by_label.setdefault(record.label, []).append(record)
    for info in dataset.classes:
        records = by_label.get(info.label, [])[:per_class]
        st.markdown(f"**{info.label}** · {info.count} photos")
        thumbs, captions = [], []
        for record in records:
            path = Path(record.path)
            png = cached.thumbnail(str(path), _mtime(path), max_side)
            if png is not None:
                thumbs.append(png)
                captions.append(path.name)
        if thumbs:
            st.image(thumbs, caption=captions, width=max_side)
        else:
            st.caption("No readable photos in this class.")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


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


def render_chart(figure: go.Figure, key: str) -> None:
    """Draw a plotly figure full width with a stable key (needed inside fragments)."""
    st.plotly_chart(figure, width="stretch", config=CHART_CONFIG, key=key)


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


def render_curves(frame: pd.DataFrame | Mapping[str, pd.DataFrame], key: str) -> None:
    """Accuracy and cross-entropy curves side by side (train and validation; several runs overlaid)."""
    left, right = st.columns(2)
    with left:
        render_chart(
            curves_figure(frame, ["train_accuracy", "validation_accuracy"], "Accuracy"),
            key=f"{key}_accuracy",
        )
    with right:
        render_chart(
            curves_figure(frame, ["cross_entropy", "validation_cross_entropy"], "Cross entropy"),
            key=f"{key}_entropy",
        )
