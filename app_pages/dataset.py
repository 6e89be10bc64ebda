"""The Dataset page: choose the photos (demo, folder, zip, flower_photos) and look at them."""

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.core.paths import datasets_dir
from engine.data.download import download_flower_photos
from engine.data.sources import import_zip, resolve_local_folder
from ui import cached, state
from ui.browse import render_class_browser, render_messages
from ui.errors import public_text, user_errors
from ui.label_next import render_label_next
from ui.library import render_stored_datasets
from ui.limits import ZIP_UPLOAD_MB
from ui.render import progress_callback, render_split_inputs
from ui.review import latest_run_on, render_review

SOURCES = ("Demo", "Local folder", "Upload a zip", "Download flower_photos")
ZIPS_KEY = "imported_zips"
ZIP_NAME_HINT = (
    ". A file or folder name in the zip cannot be made on this system (a name used for both a "
    "file and a folder, or one too long): rename it and zip the folder again"
)


def render_source() -> tuple[Path | None, str]:
    """The source picker; returns the chosen dataset folder (None until ready) and its label."""
    state.remember_default("dataset_source", SOURCES[0])
    source = st.radio("Photos from", SOURCES, horizontal=True, key="dataset_source")
    if source == "Demo":
        return Path(cached.demo_dataset_root()), "demo (built in)"
    if source == "Local folder":
        state.remember_default("dataset_local_path", "")
        typed = st.text_input(
            "Folder with one sub-folder per class",
            key="dataset_local_path",
            placeholder="/home/me/photos",
        ).strip()
        return (resolve_local_folder(typed), typed) if typed else (None, "")
    if source == "Upload a zip":
        upload = st.file_uploader(
            "Zip of class folders", type=["zip"], key="dataset_zip", max_upload_size=ZIP_UPLOAD_MB
        )
        if upload is None:
            return None, ""
        imported = st.session_state.setdefault(ZIPS_KEY, {})
        if upload.file_id not in imported:
            done = progress_callback(f"Importing {upload.name}")
            with user_errors(f"Cannot import {public_text(upload.name)}: ", os_hint=ZIP_NAME_HINT):
                imported[upload.file_id] = str(
                    import_zip(upload, name=Path(upload.name).stem, progress=done)
                )
        return Path(imported[upload.file_id]), f"zip: {upload.name}"
    existing = datasets_dir() / "flower_photos"
    if existing.is_dir():
        return existing, "flower_photos"
    st.caption("About 220 MB from download.tensorflow.org: 3,670 photos of 5 kinds of flowers.")
    if st.button("Download flower_photos", key="dataset_download", icon=":material/download:"):
        done = progress_callback("Downloading flower_photos")
        return download_flower_photos(progress=done), "flower_photos"
    return None, ""


st.title("Dataset")
st.caption("Photos sorted into one sub-folder per class; the folder names are the labels.")
render_stored_datasets()

with user_errors():
    root, label = render_source()
if root is None:
    st.info("Choose the photos above to see them here.", icon=":material/info:")
    st.stop()
state.select_dataset(root, label)

with st.expander("Split into train / validation / test", expanded=False):
    validation_pct, testing_pct = render_split_inputs()
with user_errors():
    dataset = cached.scan(str(root), validation_pct, testing_pct, cached.folder_signature(root))

cols = st.columns(4)
cols[0].metric("Classes", len(dataset.classes))
cols[1].metric("Photos", len(dataset.images))
cols[2].metric("Problems", len(dataset.problems))
cols[3].metric("Duplicate groups", len(dataset.duplicates))
render_messages(dataset.errors, "error")
render_messages(dataset.warnings, "warning")
if dataset.trainable:
    st.success(f"Ready to train on {public_text(root)}", icon=":material/check_circle:")

st.subheader("Classes: photos per split and samples")
render_class_browser(dataset)

st.subheader("Image sizes")
stats = dataset.stats
if not dataset.images:
    st.caption("No readable photos.")
else:
    left, right = st.columns([3, 1])
    left.dataframe(
        pd.DataFrame({name: stats[name] for name in ("width", "height", "bytes")}).T,
        key="dataset_sizes",
    )
    right.dataframe(
        pd.Series(stats["formats"], name="photos").rename_axis("format"), key="dataset_formats"
    )

st.subheader("Problems")
if dataset.problems:
    st.dataframe(
        pd.DataFrame([vars(p) for p in dataset.problems], columns=["rel_path", "kind", "reason"]),
        hide_index=True,
        key="dataset_problems",
    )
else:
    st.caption("None: every file is a usable photo.")

st.subheader("Duplicates")
if dataset.duplicates:
    st.dataframe(
        pd.DataFrame([{"kind": d.kind, "files": ", ".join(d.rel_paths)} for d in dataset.duplicates]),
        hide_index=True,
        key="dataset_duplicates",
    )
else:
    st.caption("No photo appears twice.")

run_dir = latest_run_on(root)
st.subheader("Review")
with user_errors():
    render_review(root, dataset, validation_pct, testing_pct, run_dir=run_dir)

st.subheader("Label these next")
render_label_next(root, dataset, validation_pct, testing_pct, run_dir=run_dir)
