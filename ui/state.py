"""State shared by the pages, and the sidebar that shows it.

`st.session_state` is per browser tab and a reload wipes it, so it only holds
choices (the selected dataset folder, the selected run id). Anything that must
outlive a tab (a running training, TensorBoard) is found again from disk or
from a `st.cache_resource` singleton (see `ui.cached`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

from ui.errors import public_text
from ui.safe import md

DATASET_KEY = "selected_dataset_root"
DATASET_LABEL_KEY = "selected_dataset_label"
RUN_KEY = "selected_run_id"
# Widget keys whose values outlive a page switch. Streamlit drops the state of
# widgets not drawn in a run; re-assigning the key each run keeps it (the
# documented "interrupt the widget clean-up" pattern). Widgets with these keys
# take their default from `remember_default`, never from `value=`.
PERSISTENT_WIDGET_KEYS = (
    "dataset_source",
    "dataset_local_path",
    "validation_pct",
    "testing_pct",
)
# Only NVIDIA GPUs are used by TensorFlow's Linux wheels; the driver shows here.
_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def keep_widget_state() -> None:
    """Carry the persistent widgets' values over to whichever page runs next."""
    for key in PERSISTENT_WIDGET_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def remember_default(key: str, default: object) -> None:
    """Give the persistent widget `key` its first value (later runs keep the user's)."""
    st.session_state.setdefault(key, default)


def selected_dataset() -> tuple[Path | None, str]:
    """The dataset folder chosen on the Dataset page, and its label.

    Returns:
        `(path, label)`; `path` is None while the demo default is in use.
    """
    root = st.session_state.get(DATASET_KEY)
    label = st.session_state.get(DATASET_LABEL_KEY, "demo (built in)")
    return (Path(root) if root else None), label


def select_dataset(root: Path | None, label: str) -> None:
    """Remember the dataset folder for the other pages of this tab.

    The sidebar is drawn before the page, so a change reruns the script once
    to show the new choice there.

    Args:
        root: the dataset folder; None for the demo default.
        label: how the sidebar names it ("demo", "zip: birds.zip", a path).
    """
    value = (str(root) if root else None, label)
    if (st.session_state.get(DATASET_KEY), st.session_state.get(DATASET_LABEL_KEY)) != value:
        st.session_state[DATASET_KEY], st.session_state[DATASET_LABEL_KEY] = value
        st.rerun()


_PENDING_PREFIX = "pending_switch_"


def selected_run_id() -> str | None:
    """The run chosen on the Train, Predict or Runs page, or None for the latest."""
    return st.session_state.get(RUN_KEY)


def switch_run_picker(key: str, run_id: str) -> None:
    """Make the run picker `key` show `run_id` from the next run of the page (then rerun).

    A widget's value cannot be set once it is drawn in this run, so the choice
    waits under a side key until `take_run_picker_switch` (called before the
    picker is drawn) applies it.
    """
    st.session_state[_PENDING_PREFIX + key] = run_id
    st.session_state[RUN_KEY] = run_id
    st.rerun()


def take_run_picker_switch(key: str) -> None:
    """Apply a pending `switch_run_picker` to the picker `key`; call it before drawing the picker."""
    pending = st.session_state.pop(_PENDING_PREFIX + key, None)
    if pending is not None:
        st.session_state[key] = pending


def select_run(run_id: str | None) -> None:
    """Remember `run_id` as this tab's selected run (None: follow the latest); rerun on a change."""
    if st.session_state.get(RUN_KEY) != run_id:
        st.session_state[RUN_KEY] = run_id
        st.rerun()


def device_summary() -> str:
    """Where TensorFlow runs, told without importing it (importing costs seconds).

    Returns:
        "GPU: <names>" / "CPU" from TensorFlow itself once some page has loaded
        it in this process; otherwise a cheap guess from the NVIDIA driver and
        `CUDA_VISIBLE_DEVICES`, marked as such.
    """
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        gpus = tf.config.list_physical_devices("GPU")
        return "GPU: " + ", ".join(g.name for g in gpus) if gpus else "CPU"
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip() in {"-1", "none"}
    if not hidden and _NVIDIA_GPUS.is_dir() and any(_NVIDIA_GPUS.iterdir()):
        return "GPU (NVIDIA driver found; TensorFlow not loaded yet)"
    return "CPU"


def render_sidebar() -> None:
    """Draw the shared sidebar: selected dataset, selected run and TensorFlow device."""
    _, dataset_label = selected_dataset()
    run_id = selected_run_id()
    with st.sidebar:
        st.caption("Selected")
        st.markdown(f":material/photo_library: **Dataset:** {public_text(dataset_label)}")
        st.markdown(f":material/history: **Run:** {md(run_id) if run_id else 'latest finished'}")
        st.markdown(f":material/memory: **Device:** {device_summary()}")
