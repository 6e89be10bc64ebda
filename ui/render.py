"""Reusable `render_*` helpers: each draws one piece of UI and returns what the user chose.

Figures and tables are built in `ui.figures` (no Streamlit); these helpers
draw them. Inputs for training settings take their limits and help from
`TrainConfig`'s field metadata, so a form cannot offer what training refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine.train.config import TrainConfig
from ui import state
from ui.figures import curves_figure
from ui.safe import md

SPLIT_DEFAULT = (TrainConfig.default("validation_percentage"), TrainConfig.default("testing_percentage"))
CHART_CONFIG = {"displaylogo": False}


def setting_input(name: str, label: str, *, key: str, container: Any = st, **kwargs: Any) -> Any:
    """A number input for TrainConfig field `name`, its limits and help from the field's metadata.

    Args:
        name: the TrainConfig field.
        label: what the form calls it.
        key: the widget key.
        container: where to draw it (a column, the page). Defaults to the page.
        **kwargs: more `st.number_input` arguments (`value`, `step`, `format`, `disabled`);
            leave `value` out for a key whose value `state.remember_default` keeps.

    Returns:
        The value entered (None when the field may be empty and is).
    """
    rule = TrainConfig.setting(name)
    cast = TrainConfig.kind(name)
    return container.number_input(
        label,
        min_value=None if rule.low is None else cast(rule.low),
        max_value=None if rule.high is None else cast(rule.high),
        key=key,
        help=rule.help,
        **kwargs,
    )


def render_split_inputs() -> tuple[int, int]:
    """Validation and test percentage inputs; the values are shared by the Dataset and Train pages.

    Returns:
        `(validation_percentage, testing_percentage)`.
    """
    state.remember_default("validation_pct", SPLIT_DEFAULT[0])
    state.remember_default("testing_pct", SPLIT_DEFAULT[1])
    left, right = st.columns(2)
    # no value=: the persistent keys hold theirs (see state.remember_default)
    validation = setting_input(
        "validation_percentage", "Validation %", key="validation_pct", container=left, step=5
    )
    testing = setting_input("testing_percentage", "Test %", key="testing_pct", container=right, step=5)
    return int(validation or 0), int(testing or 0)


def progress_callback(label: str) -> Callable[[Any], None]:
    """A `progress` callback for engine calls that draws an `st.progress` bar.

    Args:
        label: what is being done ("Downloading flower_photos"); plain text
            (it may quote an upload's name), escaped here.

    Returns:
        A callable taking `engine.core.progress.Progress` snapshots.
    """
    from engine.core.progress import format_duration

    label = md(label)
    bar = st.progress(0.0, text=label)

    def _update(snapshot: Any) -> None:
        count = f"{snapshot.done}/{snapshot.total}" if snapshot.total else str(snapshot.done)
        bar.progress(
            snapshot.fraction,
            text=f"{label}: {count} {snapshot.unit}, {format_duration(snapshot.eta_s)} left",
        )

    return _update


def start_job(registry: Any, request: Any) -> Any:
    """Start `request` (a TrainConfig or SweepConfig) as a job; when refused, say why and stop the page.

    Args:
        registry: the `engine.runs.jobs.JobRegistry`.
        request: what to run.

    Returns:
        The started job.
    """
    from ui.errors import user_errors

    with user_errors():
        return registry.start(request)


def render_chart(figure: go.Figure, key: str) -> None:
    """Draw a plotly figure full width with a stable key (needed inside fragments)."""
    st.plotly_chart(figure, width="stretch", config=CHART_CONFIG, key=key)


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
