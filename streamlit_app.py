"""Retrain Studio: the dashboard's entry point (router and shared frame).

Run with `streamlit run streamlit_app.py`. This file declares the six pages
with `st.navigation`, sets the page config, and draws the sidebar every page
shares: the selected dataset, the selected run and the TensorFlow device.
TensorFlow is never imported here, so the first page paints in seconds.
"""

import streamlit as st

from ui import state

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

page = st.navigation(PAGES)
state.keep_widget_state()
state.render_sidebar()
page.run()
