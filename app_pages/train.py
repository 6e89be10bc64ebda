"""The Train page: settings, a training job that runs outside the page, live curves, the report."""

import streamlit as st

from engine.core.errors import StudioError
from engine.core.runstate import ACTIVE_STATES
from engine.models.registry import DEFAULT_BACKBONE, list_backbones
from engine.runs.listing import latest_run
from ui import access, cached, state
from ui.cluster import render_compute_choice
from ui.errors import guard, show_error
from ui.follow import follow
from ui.render import SPLIT_DEFAULT, start_job
from ui.safe import md
from ui.train_form import render_backbone_picker, render_train_settings
from ui.train_report import render_live, render_report, render_warnings, run_warnings

SPLIT_KEYS = ("validation_pct", "testing_pct")

st.title("Train")
registry = cached.job_registry()
active = registry.active()
if active is not None and active.job == "sweep":
    st.info("A model comparison is running (Compare models); training can start when it ends.")
elif active is not None:
    # a reload or a second tab reattaches to the running job
    state.select_run(active.run_id)

root, dataset_label = state.selected_dataset()
if root is None:
    root = cached.demo_dataset_root()
st.caption(f"Retrain the last layer on **{md(dataset_label)}** (choose another on the Dataset page).")
try:
    split = [st.session_state.get(k, d) for k, d in zip(SPLIT_KEYS, SPLIT_DEFAULT, strict=True)]
    blockers = cached.scan(str(root), *split, cached.folder_signature(root)).errors
except (StudioError, OSError) as error:
    blockers = [error]
for message in blockers:
    show_error(message, prefix="Cannot train on this dataset: ")

with st.expander("Settings", expanded=active is None):
    backbone = render_backbone_picker(list_backbones(), DEFAULT_BACKBONE)
    ray, usable = render_compute_choice(disabled=active is not None)
    ready = active is None and backbone.weights_available() and not blockers and usable
    config = render_train_settings(backbone, root, disabled=not ready, ray=ray)
if config is not None:
    state.select_run(start_job(registry, config).run_id)
    st.rerun()

# this tab's run, else the newest one: a fresh tab still shows the last training
newest = latest_run(state=None)
run_id = state.selected_run_id() or (newest.run_id if newest else None)
if run_id is None:
    st.info("Choose the settings and press Start training.", icon=":material/info:")
    st.stop()
try:
    job = registry.get(run_id)
except StudioError:
    state.select_run(None)
    st.info("That run is gone; start a new one.", icon=":material/info:")
    st.stop()
# Computed before the fragment is defined: polling stops once the job has ended.
polling = 1.0 if job.running else None


@st.fragment(run_every=polling)
@guard()
def live_view() -> None:
    """The run's state, progress and curves; refreshed every second while it runs."""
    now = job.state
    followed = follow(job.run_dir)
    icon = {"done": ":material/check_circle:", "failed": ":material/error:"}.get(now, ":material/sync:")
    st.subheader(f"Run {md(job.run_id)}", anchor=False)
    st.markdown(f"{icon} **{now}**", help="queued → running → done | failed | cancelled")
    render_live(followed, now)
    if now in ACTIVE_STATES:
        render_warnings(run_warnings(job.run_dir, followed))
        if st.button("Cancel training", key="train_cancel", icon=":material/stop:"):
            job.cancel()
            st.toast("Cancelling: the job stops at its next step.")
    elif polling is not None:
        st.rerun()  # the job just ended: redraw the whole page (report, Start enabled)
    error = job.run_dir.read_status().get("error")
    if now in ("failed", "cancelled") and error:
        log = "train.log in the run's folder" if access.exposed() else job.run_dir.log_path
        show_error(f"{error} (log: {log})")


live_view()
if not job.running:
    render_report(job.run_dir, run_warnings(job.run_dir, follow(job.run_dir)))
