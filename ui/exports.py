"""The Train report's exports: the follow-up's progress, what each saved model costs, more on demand.

A run is usable (its LiteRT model) before its exports exist; they come from
the follow-up the training runs after `done`, or from `python -m engine
export` started here (`engine.runs.exports`). This section follows them
every second while they run, says why one failed (the run stays usable), and
offers the formats not made yet.
"""

from __future__ import annotations

import io
import zipfile
from functools import partial
from pathlib import Path

import streamlit as st

from engine.core.errors import StudioError
from engine.core.progress import format_duration
from engine.core.rundir import RunDir
from engine.runs.exports import ACTIVE, start_export
from engine.serve.export import FORMATS
from engine.train.follow_up import export_state
from engine.train.model_card import model_card_path
from ui.errors import guard, public_text, show_error
from ui.figures import SCORED_MODELS, scored_models_frame
from ui.safe import md

FORMAT_NAMES = {name: SCORED_MODELS[name] for name in FORMATS}


def render_exports(run: RunDir) -> None:
    """The exports of a done run: progress while they run, their figures, buttons for the rest.

    Args:
        run: the run folder.
    """
    polling = 1.0 if export_state(run).get("state") in ACTIVE else None

    @st.fragment(run_every=polling)
    @guard()
    def exports_view() -> None:
        state = export_state(run)
        now = state.get("state")
        if now in ACTIVE:
            _render_progress(state)
        elif polling is not None:
            st.rerun()  # they just ended: redraw the report (figures, model card, downloads)
        for name, error in (state.get("errors") or {}).items() if now == "failed" else ():
            show_error(
                f"{FORMAT_NAMES.get(name, name)}: {public_text(error)}", icon=":material/warning:"
            )
        report = run.read_report()
        scored = scored_models_frame(report)
        if len(scored):
            st.markdown("**What each saved model costs** (scored on the same test photos)")
            st.dataframe(
                scored, hide_index=True, key="train_scored_models",
                column_config={
                    "test accuracy": st.column_config.NumberColumn(format="percent"),
                    "size (MB)": st.column_config.NumberColumn(format="%.2f"),
                    "latency (ms, 1 photo)": st.column_config.NumberColumn(format="%.1f"),
                    "agrees with the run's model": st.column_config.NumberColumn(format="percent"),
                },
            )  # fmt: skip
        _render_export_buttons(run, report, busy=now in ACTIVE)

    exports_view()


def _render_progress(state: dict) -> None:
    progress = state.get("progress") or {}
    done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
    what = ", ".join(FORMAT_NAMES.get(f, f) for f in state.get("formats") or [])
    st.progress(
        min(1.0, done / total) if total else 0.0,
        text=md(f"Exporting {what}: {done}/{total} models, ")
        + f"{format_duration(progress.get('eta_s'))} left · the model is usable already",
    )


def _render_export_buttons(run: RunDir, report: dict, *, busy: bool) -> None:
    made = {k for k, v in (report.get("exports") or {}).items() if v.get("accuracy") is not None}
    missing = [f for f in FORMATS if f not in made]
    if not missing:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.multiselect(
        "Export more", missing, default=missing, format_func=FORMAT_NAMES.get, key="train_export_formats",
        disabled=busy, help="Each is scored again on the test photos (accuracy, size, latency).",
    )  # fmt: skip
    if right.button(
        "Export", key="train_export_more", disabled=busy or not chosen, icon=":material/save:"
    ):
        try:
            start_export(run, chosen)
        except StudioError as error:
            show_error(error, prefix="Cannot export: ")
            return
        st.rerun()  # the page polls while they run


def render_downloads(run: RunDir) -> None:
    """Download buttons for the model, the labels and every export (a SavedModel folder as a zip).

    Args:
        run: the run folder.
    """
    files = {p.name: p for p in (run.model_path, run.labels_path, model_card_path(run)) if p.is_file()}
    if run.export_dir.is_dir():
        for path in sorted(run.export_dir.iterdir()):
            if path.name.startswith("."):
                continue  # an export being written
            name = f"{path.name}.zip" if path.is_dir() else path.name
            # export/labels.txt is the same file as the run's labels.txt
            files.setdefault(name, path)
    if not files:
        return
    st.markdown("**Downloads**")
    cols = st.columns(min(4, len(files)))
    for index, (name, path) in enumerate(files.items()):
        cols[index % len(cols)].download_button(
            md(name),
            data=partial(_zip_folder, path) if path.is_dir() else path.read_bytes,
            file_name=name,
            key=f"train_download_{name}",
            icon=":material/download:",
        )


def _zip_folder(folder: Path) -> bytes:
    """The folder as zip bytes (made only when its download button is pressed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()
