"""The TensorBoard page: start or stop TensorBoard on the runs folder; the runs' tags and scalars."""

import plotly.express as px
import streamlit as st

from engine.core.paths import runs_dir
from engine.runs.event_files import inspect_logs, read_scalars
from engine.runs.tensorboard import running_tensorboards, start_tensorboard, stop_tensorboard
from ui import access, lifecycle
from ui.errors import public_text, user_errors
from ui.render import render_chart
from ui.safe import md

st.title("TensorBoard")
logdir = runs_dir()
logdir.mkdir(parents=True, exist_ok=True)
serving = [p for p in running_tensorboards() if p.logdir == logdir.resolve()]

if serving:
    server = serving[0]
    st.success(
        f"TensorBoard is serving {public_text(logdir)} at {md(server.url)}",
        icon=":material/check_circle:",
    )
    if access.exposed():
        st.caption(
            f"It listens on the server's {md(server.host)} only: open it on the server, or through "
            f"a tunnel such as `ssh -L {server.port}:127.0.0.1:{server.port} SERVER`."
        )
    open_col, stop_col = st.columns([1, 4])
    open_col.link_button("Open TensorBoard", server.url, icon=":material/open_in_new:")
    if stop_col.button("Stop TensorBoard", key="tb_stop", icon=":material/stop:"):
        stop_tensorboard(logdir)
        st.rerun()
else:
    st.caption(f"Runs folder: {public_text(logdir)}")
    if st.button("Start TensorBoard", key="tb_start", type="primary", icon=":material/play_arrow:"):
        with user_errors(), st.spinner("Starting TensorBoard…"):
            # owned by this server process: it stops when the app stops (ui.lifecycle)
            started = start_tensorboard(logdir, owner=lifecycle.owner())
        if started.notice:
            st.toast(public_text(started.notice))
        st.rerun()

st.subheader("Runs and tags")
tags = inspect_logs(logdir)
if not tags:
    st.info("No TensorBoard logs yet: train a run first.", icon=":material/info:")
    st.stop()
st.dataframe([vars(t) for t in tags], hide_index=True, key="tb_tags")

st.subheader("Scalars")
scalars = read_scalars(logdir)
if scalars.empty:
    st.caption("No scalars in the logs.")
    st.stop()
scalars["run_id"] = scalars["run"].str.split("/").str[0]
run_ids = sorted(scalars["run_id"].unique(), reverse=True)
chosen = st.multiselect("Runs", run_ids, default=run_ids[:2], key="tb_runs")
tag_names = sorted(scalars["tag"].unique())
tag = st.selectbox(
    "Tag",
    tag_names,
    index=next((i for i, t in enumerate(tag_names) if "accuracy" in t), 0),
    key="tb_tag",
)
shown = scalars[scalars["run_id"].isin(chosen) & (scalars["tag"] == tag)]
figure = px.line(shown, x="step", y="value", color="run", markers=True, title=tag)
figure.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10})
render_chart(figure, key="tb_scalars")
