"""The Compare models page's pieces: the sweep's settings, its live progress, the leaderboard.

The page stays a short script; these helpers draw a sweep read from its folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from engine.core.errors import StudioError
from engine.core.progress import format_duration
from engine.core.rundir import RunDir
from engine.models.registry import list_backbones
from engine.train.candidates import CANDIDATE_KINDS
from engine.train.config import TrainConfig
from engine.train.sweep import attach_full_run, read_leaderboard, refresh_full_runs
from engine.train.sweep_config import SIZES, SweepConfig
from ui import state
from ui.errors import public_text, show_error
from ui.follow import Followed
from ui.leaderboard import leaderboard_figure, leaderboard_frame, pareto_front
from ui.render import SPLIT_DEFAULT, render_chart, start_job
from ui.safe import md

SIZE_LABELS = {"all": "every input size each offers", "default": "each one's own size only"}


def offered_candidates() -> tuple[list[str], list[str]]:
    """`(every name the form offers, the ones chosen by default: whose weights are here)`."""
    backbones = list_backbones()
    names = [b.name for b in backbones] + [
        k for k in CANDIDATE_KINDS if k not in {b.name for b in backbones}
    ]
    ready = [b.name for b in backbones if b.pretrained and b.weights_available()]
    ready += list(CANDIDATE_KINDS)  # small_cnn, the from-scratch baseline, among them
    return names, ready


def candidate_label(name: str) -> str:
    """A candidate's name as the form shows it: the from-scratch baseline says so."""
    known = {b.name: b for b in list_backbones()}
    return f"{name} (from scratch)" if name in known and not known[name].pretrained else name


def render_sweep_settings(image_dir: Path, *, disabled: bool) -> SweepConfig | None:
    """The new-comparison form; a validated SweepConfig when Start is pressed, else None.

    Args:
        image_dir: the dataset folder (the Dataset page's choice).
        disabled: grey out Start (a job is running).
    """
    names, ready = offered_candidates()
    with st.form("compare_settings", border=True):
        chosen = st.multiselect(
            "Candidates", names, default=ready, key="compare_architectures",
            format_func=candidate_label,
            help=SweepConfig.__dataclass_fields__["architectures"].metadata["setting"].help,
        )  # fmt: skip
        sizes = st.radio(
            "Sizes", SIZES, format_func=SIZE_LABELS.get, horizontal=True, key="compare_sizes"
        )
        submitted = st.form_submit_button(
            "Start comparison", type="primary", icon=":material/leaderboard:", disabled=disabled
        )
    if not submitted:
        return None
    split = [
        st.session_state.get(k, d)
        for k, d in zip(("validation_pct", "testing_pct"), SPLIT_DEFAULT, strict=True)
    ]
    config = SweepConfig(
        image_dir=str(image_dir), architectures=",".join(chosen) or None, sizes=str(sizes),
        validation_percentage=int(split[0]), testing_percentage=int(split[1]),
    )  # fmt: skip
    try:
        if not chosen:
            raise StudioError("no candidate chosen; pick at least one")
        return config.validate()
    except StudioError as error:
        st.error(f"Not started: {public_text(error)}", icon=":material/error:")
        return None


def render_sweep_live(followed: Followed, status: dict[str, Any]) -> None:
    """Which candidate is being scored, of how many, and the phase it is in."""
    total = status.get("candidates_total")
    done = int(status.get("candidates_done") or 0)
    if total:
        st.progress(
            min(1.0, done / total),
            text=f"Candidate {min(done + 1, total)} of {total}: {status.get('candidate', '…')}",
        )
    progress = followed.progress
    if progress and progress.get("phase") != "sweep":
        finished, count = progress.get("done", 0), progress.get("total", 0)
        st.progress(
            min(1.0, finished / count) if count else 0.0,
            text=f"{str(progress.get('phase', '')).capitalize()}: {finished}/{count} "
            f"{progress.get('unit', '')}, {format_duration(progress.get('eta_s'))} left",
        )
    elif not total:
        st.caption(f"Phase: {followed.phase or 'starting'}…")


def render_leaderboard(run: RunDir, registry: Any, *, buttons: bool = True) -> None:
    """The table (best first), the accuracy / latency scatter and one full-run button per candidate.

    Args:
        run: the sweep's folder.
        registry: the job registry (a full run is started through it).
        buttons: draw the full-run buttons (not while the sweep runs). Defaults to True.
    """
    if buttons:
        refresh_full_runs(run)  # a full run's int8 figures, once its exports have landed
    board = read_leaderboard(run)
    rows = board.get("rows") or []
    if not rows:
        st.caption("No candidate scored yet.")
        return
    front = pareto_front(rows)
    st.dataframe(
        leaderboard_frame(rows),
        hide_index=True,
        key="compare_table",
        column_config={
            "macro-F1": st.column_config.NumberColumn(format="%.3f"),
            "float MB": st.column_config.NumberColumn(format="%.2f"),
            "int8 MB": st.column_config.NumberColumn(format="%.2f"),
            "ms / photo": st.column_config.NumberColumn(format="%.1f"),
            "test accuracy": st.column_config.NumberColumn(format="percent"),
            "int8 change (points)": st.column_config.NumberColumn(format="%+.1f"),
        },
    )
    render_chart(leaderboard_figure(rows), key="compare_scatter")
    st.caption(f"Pareto front (nothing both more accurate and faster): {', '.join(front) or '-'}.")
    for item in board.get("skipped") or []:
        st.caption(f"Skipped {md(item['candidate'])}: {public_text(item['reason'])}")
    if buttons:
        render_full_run_buttons(run, rows, registry)


def render_full_run_buttons(sweep: RunDir, rows: list[dict[str, Any]], registry: Any) -> None:
    """One button per scored candidate: train it for real (model, labels, exports, report).

    A candidate already made a full run opens that run instead; its int8
    columns fill in from the run's exports.
    """
    st.markdown(
        "**Make one a full run** (trains it on the same data and split, with every export; "
        "its int8 columns fill in when the exports land)"
    )
    busy = registry.active() is not None
    scored = [row for row in rows if not row.get("error") and row.get("full_run")]
    columns = st.columns(min(4, max(1, len(scored))))
    for index, row in enumerate(scored):
        made = row.get("full_run_id")
        column = columns[index % len(columns)]
        if made and (sweep.path.parent / made).is_dir():
            if column.button(
                f"{row['candidate']}: open its run", key=f"compare_open_{row['candidate']}",
                icon=":material/open_in_new:", help=f"Run {made} on the Train page",
            ):  # fmt: skip
                st.session_state[state.RUN_KEY] = made
                st.switch_page("app_pages/train.py")
            continue
        if column.button(
            row["candidate"], key=f"compare_full_{row['candidate']}", icon=":material/model_training:",
            disabled=busy, help="Start a training of this candidate and follow it on the Train page",
        ):  # fmt: skip
            try:
                job = start_job(registry, TrainConfig.from_dict(row["full_run"]))
                attach_full_run(sweep, row["candidate"], job.run_id)
            except StudioError as error:
                show_error(error, prefix="Cannot start the full run: ")
                return
            st.session_state[state.RUN_KEY] = job.run_id  # the Train page follows it
            st.switch_page("app_pages/train.py")
