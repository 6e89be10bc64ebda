"""The Dataset page's "Your datasets": the studio's own datasets, listed, and deleted after a confirmation.

Only what `engine.data.library` lists (folders the studio generated, imported
or downloaded) is shown, so only those can be deleted. Deleting the dataset
the page shows switches the page back to the demo, so a deleted upload is not
imported again from the file still in the uploader.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.core.errors import StudioError
from engine.data.library import StoredDataset, delete_dataset, list_datasets
from ui import cached, state
from ui.errors import public_text
from ui.safe import md

CONFIRM_KEY = "datasets_confirm_delete"
ERROR_KEY = "datasets_delete_error"
ZIPS_KEY = "imported_zips"  # app_pages/dataset.py: upload file id -> its imported folder
SOURCE_KEY = "dataset_source"


def _delete(name: str) -> None:
    """The confirmation's callback: runs before the next script run, so widget state may change."""
    st.session_state.pop(CONFIRM_KEY, None)
    try:
        path = str(delete_dataset(name))
    except StudioError as error:
        st.session_state[ERROR_KEY] = str(error)
        return
    zips = st.session_state.get(ZIPS_KEY, {})
    for file_id in [k for k, v in zips.items() if v == path]:
        del zips[file_id]
    if st.session_state.get(state.DATASET_KEY) == path:
        st.session_state[SOURCE_KEY] = "Demo"
    cached.demo_dataset_root.clear()  # regenerated when next needed, if it was the demo


def _table(stored: list[StoredDataset]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "name": d.name,
                "kind": d.kind,
                "size (MB)": round(d.size_bytes / 1e6, 1),
                "files": d.files,
                "created": d.created.replace("T", " ")[:16],
                "from": d.source or "",
            }
            for d in stored
        ]
    )


def render_stored_datasets() -> None:
    """An expander listing the studio's datasets, with a delete button and its confirmation."""
    stored = list_datasets()
    total_mb = sum(d.size_bytes for d in stored) / 1e6
    with st.expander(f"Your datasets ({len(stored)}, {total_mb:,.1f} MB)", expanded=False):
        error = st.session_state.pop(ERROR_KEY, None)
        if error:
            st.error(public_text(error), icon=":material/error:")
        if not stored:
            st.caption("None yet: imported zips, downloads and the demo appear here.")
            return
        st.dataframe(_table(stored), hide_index=True, key="datasets_table")
        names = [d.name for d in stored]
        chosen = st.selectbox("Dataset", names, key="datasets_chosen")
        if st.button("Delete…", key="datasets_delete", icon=":material/delete:"):
            st.session_state[CONFIRM_KEY] = chosen
        pending = st.session_state.get(CONFIRM_KEY)
        if pending in names:
            st.warning(
                f"Delete the dataset {md(repr(pending))} and every file in it? This cannot be undone."
            )
            yes, no = st.columns(2)
            yes.button(
                "Yes, delete it",
                key="datasets_delete_yes",
                type="primary",
                on_click=_delete,
                args=(pending,),
            )
            if no.button("Cancel", key="datasets_delete_no"):
                st.session_state.pop(CONFIRM_KEY)
                st.rerun()
