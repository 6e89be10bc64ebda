"""The Runs page: every training run, two runs' curves compared, and deleting a run."""

import pandas as pd
import streamlit as st

from engine.runs.listing import RunSummary, delete_run, list_runs
from ui import cached, state
from ui.errors import shown_path, user_errors
from ui.render import render_curves
from ui.safe import md

CONFIRM_KEY = "runs_confirm_delete"
# retrain.py's names for the settings worth a column.
SETTINGS = {
    "how_many_training_steps": "steps",
    "learning_rate": "lr",
    "train_batch_size": "batch",
    "image_size": "size",
}


def settings_text(run: RunSummary) -> str:
    """A short `steps=… lr=…` summary of a run's config.json (a sweep: its candidates and best)."""
    if run.job == "sweep":
        status = run.run.read_status()
        return (
            f"sweep of {status.get('candidates_total', '?')} candidates, best {status.get('best', '-')}"
        )
    config = run.run.read_config()
    return " ".join(f"{short}={config[key]}" for key, short in SETTINGS.items() if key in config)


def steps_of(run: RunSummary) -> pd.DataFrame:
    """The run's step table (cached until its events grow)."""
    return cached.run_steps(str(run.path), cached.file_size(run.run.events_path))


st.title("Runs")
all_runs = list_runs()
if not all_runs:
    st.info("No runs yet: start one on the Train page.", icon=":material/info:")
    st.stop()

table = pd.DataFrame(
    [
        {
            "run": r.run_id,
            "status": r.status,
            "test accuracy": r.test_accuracy,
            "architecture": r.architecture,
            "settings": settings_text(r),
            "steps": r.steps,
            "duration (s)": r.duration_s,
            "data": shown_path(r.dataset) if r.dataset else None,
        }
        for r in all_runs
    ]
)
st.dataframe(
    table,
    hide_index=True,
    key="runs_table",
    column_config={
        "test accuracy": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent")
    },
)
by_id = {r.run_id: r for r in all_runs}
ids = list(by_id)

st.subheader("Compare two runs")
left, right = st.columns(2)
first = left.selectbox("Run A", ids, index=0, key="runs_compare_a")
second = right.selectbox("Run B", ids, index=min(1, len(ids) - 1), key="runs_compare_b")
render_curves({"A": steps_of(by_id[first]), "B": steps_of(by_id[second])}, key="runs_compare")

st.subheader("Use or delete a run")
chosen = st.selectbox("Run", ids, key="runs_chosen")
use_col, delete_col = st.columns(2)
sweep = by_id[chosen].job == "sweep"  # a comparison has no model to predict with
if use_col.button("Use on Predict", key="runs_use", icon=":material/image_search:", disabled=sweep):
    state.select_run(chosen)
if delete_col.button("Delete…", key="runs_delete", icon=":material/delete:"):
    st.session_state[CONFIRM_KEY] = chosen
pending = st.session_state.get(CONFIRM_KEY)
if pending:
    st.warning(f"Delete run {md(pending)} and every file in its folder? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", key="runs_delete_yes", type="primary"):
        st.session_state.pop(CONFIRM_KEY)
        with user_errors():
            delete_run(pending)
        if state.selected_run_id() == pending:
            state.select_run(None)
        st.rerun()
    if no.button("Cancel", key="runs_delete_no"):
        st.session_state.pop(CONFIRM_KEY)
        st.rerun()
