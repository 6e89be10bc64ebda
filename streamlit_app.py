"""Retrain Studio: the dashboard's entry point (router and shared frame).

Run with `streamlit run streamlit_app.py`. This file declares the six pages
with `st.navigation`, sets the page config, and draws the sidebar every page
shares: the selected dataset, the selected run and the TensorFlow device.
TensorFlow is never imported here, so the first page paints in seconds.

Before any page: the process's exit hook for TensorBoard (`ui.lifecycle`,
once per server process) and, when the app listens beyond loopback, the
password gate (`ui.access`). Each page runs inside `ui.errors.guard`: a user
error is a message, anything unexpected is logged with its traceback on the
server and shown as a short reference.
"""

# Before any page can import TensorFlow: aiortc's SRTP library (the live camera) crashes the
# process with a segmentation fault when it is first loaded after TensorFlow (checked with
# tensorflow 2.21 and pylibsrtp from aiortc 1.16); loaded first, both work. It takes ~0.1 s.
import pylibsrtp  # noqa: F401  # isort: skip
import streamlit as st

from ui import access, cached, errors, lifecycle, state

st.set_page_config(page_title="Retrain Studio", page_icon=":material/photo_library:", layout="wide")

# The page scripts live in app_pages/, not pages/: while a `pages/` folder sits
# beside this file, Streamlit serves a deep link (/train) on a fresh server from
# that folder directly, skipping this router, until some session opens "/".
PAGES = {
    "Data": [
        # the default page lives at "/" (Streamlit ignores a url_path for it)
        st.Page("app_pages/dataset.py", title="Dataset", icon=":material/photo_library:", default=True),
    ],
    "Model": [
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
        st.Page(
            "app_pages/compare.py",
            title="Compare models",
            icon=":material/leaderboard:",
            url_path="compare",
        ),
        st.Page(
            "app_pages/predict.py", title="Predict", icon=":material/image_search:", url_path="predict"
        ),
    ],
    "Runs": [
        st.Page("app_pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
        st.Page(
            "app_pages/tensorboard.py",
            title="TensorBoard",
            icon=":material/monitoring:",
            url_path="tensorboard",
        ),
    ],
}

lifecycle.install()
cached.swept_leftovers()  # once per server process: what a killed import or write left
# Navigation first, hidden until the visitor may see it, so a deep link survives signing in.
page = st.navigation(PAGES, position="sidebar" if access.allowed() else "hidden")
access.gate()
state.keep_widget_state()
with errors.guard():
    state.render_sidebar()
    page.run()
