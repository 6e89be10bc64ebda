"""The Compare models page: a sweep (every chosen backbone at each size) as a job, and its leaderboard."""

import streamlit as st

from engine.core.runstate import ACTIVE_STATES
from engine.runs.listing import list_runs
from ui import cached, state
from ui.compare import render_leaderboard, render_sweep_live, render_sweep_settings
from ui.errors import public_text
from ui.follow import follow
from ui.render import start_job

SWEEP_KEY = "compare_sweep"

st.title("Compare models")
registry = cached.job_registry()
active = registry.active()
if active is not None and active.job == "sweep":
    st.session_state[SWEEP_KEY] = active.run_id  # a reload or a second tab finds the running sweep

root, dataset_label = state.selected_dataset()
if root is None:
    root = cached.demo_dataset_root()
st.caption(
    f"Every chosen backbone, at each input size it offers, scored on **{public_text(dataset_label)}** with the "
    "split of the Dataset page: cached features, the L-BFGS head, then accuracy, size and speed."
)
sweeps = list_runs(job="sweep")
with st.expander("New comparison", expanded=not sweeps and active is None):
    if active is not None and active.job != "sweep":
        st.info("A training is running; a comparison can start when it ends.", icon=":material/info:")
    config = render_sweep_settings(root, disabled=active is not None)
if config is not None:
    st.session_state[SWEEP_KEY] = start_job(registry, config).run_id
    st.rerun()

if not sweeps:
    st.info(
        "No comparison yet: choose the candidates and press Start comparison.", icon=":material/info:"
    )
    st.stop()
ids = [s.run_id for s in sweeps]
by_id = {s.run_id: s for s in sweeps}
wanted = st.session_state.get(SWEEP_KEY)
sweep_id = st.selectbox(
    "Comparison",
    ids,
    index=ids.index(wanted) if wanted in ids else 0,
    format_func=lambda i: (
        f"{i} · {by_id[i].status}"
        + (f" · best {by_id[i].test_accuracy:.1%}" if by_id[i].test_accuracy is not None else "")
    ),
    key="compare_chosen",
)
job = registry.get(sweep_id)
# Computed before the fragment is defined: polling stops once the sweep has ended.
polling = 1.0 if job.running else None


@st.fragment(run_every=polling)
def live_view() -> None:
    """The sweep's state and progress; refreshed every second while it runs."""
    now = job.state
    st.markdown(f"**{now}**", help="queued → running → done | failed | cancelled")
    if now in ACTIVE_STATES:
        render_sweep_live(follow(job.run_dir), job.run_dir.read_status())
        if st.button("Cancel comparison", key="compare_cancel", icon=":material/stop:"):
            job.cancel()
            st.toast("Cancelling: the comparison stops before its next candidate.")
    elif polling is not None:
        st.rerun()  # the sweep just ended: redraw the whole page
    error = job.run_dir.read_status().get("error")
    if now in ("failed", "cancelled") and error:
        st.error(public_text(error), icon=":material/error:")
    if now in ACTIVE_STATES:
        render_leaderboard(job.run_dir, registry, buttons=False)  # the candidates scored so far


live_view()
if not job.running:
    render_leaderboard(job.run_dir, registry)
