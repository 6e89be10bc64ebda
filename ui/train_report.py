"""The Train page's views of a run: live progress and curves, then the report.

The page stays a short script; these helpers draw a run read from its folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from engine.core.progress import format_duration
from engine.core.rundir import RunDir
from engine.train.evaluation import CONFUSION_IMAGE_MAX_CLASSES, top_confusions
from engine.train.model_card import describe_fit, model_card_path
from ui import cached
from ui.errors import public_text
from ui.exports import render_downloads, render_exports
from ui.figures import clickable_confusion_figure, selected_cell, time_left
from ui.follow import Followed
from ui.render import CHART_CONFIG, render_curves
from ui.safe import md

PER_CLASS_COLUMNS = ["label", "precision", "recall", "f1", "support"]
RUNTIME_NAMES = {"litert": "LiteRT", "tensorflow": "TensorFlow"}


def render_live(followed: Followed, state: str) -> None:
    """Progress (bottlenecks, then steps with time left) and the live curves."""
    progress = followed.progress
    if progress and (progress.get("phase") == "bottlenecks" or not followed.steps):
        # bottlenecks (and demo data, scans) before the first step: their own bar
        done, total = progress.get("done", 0), progress.get("total", 0)
        phase = str(progress.get("phase", "")).replace("-", " ").capitalize()
        st.progress(
            min(1.0, done / total) if total else 0.0,
            text=md(f"{phase}: {done}/{total} {progress.get('unit', 'images')}, ")
            + f"{format_duration(progress.get('eta_s'))} left",
        )
    step = followed.last_step
    if step is not None:
        total = step.get("total_steps") or step["step"]
        st.progress(
            min(1.0, step["step"] / total),
            text=f"Step {step['step']} of {total} · {format_duration(time_left(step))} left",
        )
        cols = st.columns(3)
        cols[0].metric("Train accuracy", f"{step['train_accuracy']:.1%}")
        cols[1].metric("Cross entropy", f"{step['cross_entropy']:.4f}")
        cols[2].metric("Images / s", f"{step.get('images_per_s', 0):.0f}")
        render_curves(followed.frame(), key="train_live")
    elif state in ("queued", "running"):
        st.caption(f"Phase: {md(followed.phase or 'starting')}…")


def warning_text(item: Any) -> str | None:
    """The text of one heal warning: a string, or a dict's `message` (else `warning`, `detail`)."""
    if isinstance(item, str):
        return item or None
    if isinstance(item, dict):
        for key in ("message", "warning", "detail"):
            if isinstance(item.get(key), str) and item[key]:
                return item[key]
    return None


def run_warnings(run: RunDir, followed: Followed) -> list[str]:
    """What the run found damaged and rebuilt: status.json's `warnings`, then `warning` events.

    Args:
        run: the run folder.
        followed: what this tab has read of its events.

    Returns:
        Each text once, in order.
    """
    listed = run.read_status().get("warnings")
    items = [*(listed if isinstance(listed, list) else []), *followed.warnings]
    return list(dict.fromkeys(t for t in map(warning_text, items) if t))


def render_warnings(warnings: list[str]) -> None:
    """Heal warnings as alerts (a damaged cache or run file, moved aside and rebuilt)."""
    for text in warnings:
        st.warning(public_text(text), icon=":material/healing:")


def render_report(run: RunDir, warnings: list[str] | None = None) -> None:
    """A finished run's report: test accuracy, per-class table, confusion matrix, misses, exports.

    Args:
        run: the run folder.
        warnings: what the run found damaged and rebuilt (`run_warnings`). Defaults to None.
    """
    if not run.report_path.exists():
        render_warnings(warnings or [])
        return
    report = run.read_report()
    image_dir = run.read_config().get("image_dir")
    st.metric(
        "Final test accuracy", f"{report['accuracy']:.1%}", help=f"on {report['count']} test photos"
    )
    render_runtime(run.read_config())
    render_warnings(warnings or [])
    render_head_fit(report)
    left, right = st.columns(2)
    per_class = pd.DataFrame(report["per_class"], columns=PER_CLASS_COLUMNS)
    left.dataframe(per_class, hide_index=True, key="train_per_class")
    with right:
        cell = render_confusions(report)
    if cell is not None and image_dir:
        from ui.photo_actions import render_cell_gallery

        render_cell_gallery(run, report, Path(image_dir), cell)
    misses = report.get("misclassified", [])
    st.markdown(f"**Misclassified test photos** ({len(misses)})")
    gallery = []
    for miss in misses[:12]:
        png = cached.thumbnail(str(Path(image_dir or "") / miss["path"]), 0.0, 120)
        if png is not None:
            caption = md(f"{miss['true_label']} → {miss['predicted_label']} ({miss['confidence']:.0%})")
            gallery.append((png, caption))
    if gallery:
        st.image([png for png, _ in gallery], caption=[c for _, c in gallery], width=120)
    elif not misses:
        st.caption("None.")
    render_exports(run)
    render_model_card(run)
    render_downloads(run)


def render_confusions(report: dict[str, Any]) -> tuple[str, str] | None:
    """The confusion matrix (click a cell to see its photos), or past `CONFUSION_IMAGE_MAX_CLASSES` classes its top confusions.

    Args:
        report: the run's report.json.

    Returns:
        The `(true, predicted)` cell clicked, or None.
    """
    labels, matrix = report["labels"], report["confusion_matrix"]
    if len(labels) <= CONFUSION_IMAGE_MAX_CLASSES:
        event = st.plotly_chart(
            clickable_confusion_figure(labels, matrix),
            width="stretch",
            config=CHART_CONFIG,
            key="train_confusion",
            on_select="rerun",
            selection_mode="points",
        )
        st.caption("Click a cell to see its test photos.")
        return selected_cell(event)
    st.markdown(f"**Most frequent confusions** ({len(labels)} classes are too many to draw)")
    rows = report.get("top_confusions") or top_confusions(labels, matrix)
    st.dataframe(
        pd.DataFrame(rows, columns=["true_label", "predicted_label", "count", "share"]),
        hide_index=True,
        key="train_top_confusions",
        column_config={"share": st.column_config.NumberColumn("share of true class", format="percent")},
    )
    st.caption("report.json keeps the whole confusion matrix.")
    return None


def render_head_fit(report: dict[str, Any]) -> None:
    """Which fit trained the head (and the L2 it chose), from report.json's `head_fit`.

    Args:
        report: the run's report.json.
    """
    fit = report.get("head_fit")
    if isinstance(fit, dict):
        st.caption(f"Head fit: **{public_text(describe_fit(fit))}**")


def render_model_card(run: RunDir) -> None:
    """The run's MODEL_CARD.md, folded (its download is with the others).

    Shown as its Markdown source, not rendered: it quotes class and folder names,
    which are the user's (or a visitor's zip's) and must never become live Markdown.

    Args:
        run: the run folder.
    """
    path = model_card_path(run)
    if path.is_file():
        with st.expander("Model card (MODEL_CARD.md)", icon=":material/description:"):
            st.code(path.read_text(encoding="utf-8"), language="markdown", wrap_lines=True)


def render_runtime(config: dict[str, Any]) -> None:
    """Which runtime computed the features, and a warning when it fell back to TensorFlow.

    Args:
        config: the run's config.json.
    """
    runtime = config.get("runtime")
    if runtime:
        decoder = config.get("bottleneck_decoder")
        st.caption(
            f"Features computed on **{md(RUNTIME_NAMES.get(runtime, runtime))}**"
            + (f" (decoding with {md(decoder)})" if decoder else "")
        )
    if config.get("runtime_notice"):
        notice = public_text(config["runtime_notice"])
        st.warning(f"LiteRT was not used: {notice}", icon=":material/info:")
