"""The Predict page: a finished run's model on uploaded photos (or the camera)."""

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.core.errors import ImageError, StudioError
from engine.runs.listing import list_runs
from ui import cached, limits, state
from ui.errors import show_error
from ui.figures import probability_figure
from ui.live import render_live_mode
from ui.photo_actions import heatmap_of
from ui.render import render_chart
from ui.safe import md
from ui.serve_hint import render_serve_hint
from ui.unknown import render_unknown_toggle, unknown_text

st.title("Predict")
finished = [r for r in list_runs(job="retrain") if r.status == "done"]
if not finished:
    st.info("No finished run yet: train one on the Train page.", icon=":material/info:")
    st.stop()

ids = [r.run_id for r in finished]
by_id = {r.run_id: r for r in finished}
state.take_run_picker_switch("predict_run")  # "Retrain now" in live mode switches to its run
chosen = state.selected_run_id()
run_id = st.selectbox(
    "Model from run",
    ids,
    index=ids.index(chosen) if chosen in ids else 0,
    format_func=lambda i: f"{i} · test accuracy {by_id[i].test_accuracy or 0:.1%}",
    key="predict_run",
)
state.select_run(run_id)
run = by_id[run_id].run
# the float TFLite export is what the predictor prefers (no TensorFlow needed)
model_file = run.export_dir / "model.tflite"
model_file = model_file if model_file.is_file() else run.model_path
try:
    predictor = cached.predictor(str(run.path), model_file.stat().st_mtime)
except (StudioError, OSError) as error:
    show_error(error, prefix=f"Cannot load the model of {md(run_id)}: ")
    st.stop()
labels = predictor.labels
st.caption(md(f"{model_file.name} on {predictor.runtime} · {len(labels)} classes: {', '.join(labels)}"))
render_serve_hint(run.path)

mode = st.segmented_control("Mode", ["Photos", "Live camera"], default="Photos", key="predict_mode")
if mode == "Live camera":
    render_live_mode(run, model_file)
    st.stop()
top_k = st.slider("Classes to show", 1, len(labels), min(5, len(labels)), key="predict_top_k")
answer_unknown = render_unknown_toggle(predictor)
uploads = list(
    st.file_uploader(
        "Photos",
        accept_multiple_files=True,
        key="predict_uploads",
        max_upload_size=limits.PHOTO_UPLOAD_MB,
        help=f"JPEG, PNG, GIF, BMP, WebP…: up to {limits.MAX_PREDICT_PHOTOS} photos at once, "
        f"{limits.PHOTO_UPLOAD_MB} MB each.",
    )
    or []
)
if st.toggle("Use the camera", key="predict_camera_on"):
    shot = st.camera_input("Take a photo", key="predict_camera")
    uploads += [shot] if shot is not None else []
if not uploads:
    st.info("Upload one or more photos to see what the model says.", icon=":material/upload:")
    st.stop()
uploads, refused = limits.within_limits(
    uploads, max_count=limits.MAX_PREDICT_PHOTOS, max_mb=limits.PHOTO_UPLOAD_MB
)
for message in refused:
    show_error(message, icon=":material/block:")

explain = st.toggle(
    "Why this answer",
    key="predict_heatmap",
    help="Grad-CAM heatmap of the predicted class over each photo",
)
rows = []
for index, upload in enumerate(uploads):
    data = upload.getvalue()
    try:
        prediction = predictor.predict(data, top_k=top_k)
    except ImageError as error:
        show_error(
            f"{upload.name}: not a usable image ({error.reason}).", icon=":material/broken_image:"
        )
        rows.append({"photo": upload.name, "error": error.reason})  # other columns empty
        continue
    ms = prediction.seconds * 1000
    photo, bars = st.columns([1, 2])
    shown, caption = data, upload.name
    if explain:
        heat = heatmap_of(str(run.path), data)
        if heat is not None:
            shown, caption = heat.overlay, f"{upload.name} · heatmap for {heat.label}"
    photo.image(shown, caption=md(caption), width=220)
    is_unknown = answer_unknown and prediction.unknown
    with bars:
        if is_unknown:
            st.markdown(f"**{md(unknown_text(labels))}** · {ms:.1f} ms · nearest classes:")
        else:
            st.markdown(f"**{md(prediction.label)}** · {prediction.probability:.1%} · {ms:.1f} ms")
        render_chart(probability_figure(prediction.top_k), key=f"predict_bars_{index}")
    rows.append(
        {
            "photo": upload.name,
            "label": "unknown" if is_unknown else prediction.label,
            "probability": prediction.probability,
            "ms": ms,
            "error": None,
            "nearest": prediction.label,
            "unknown_score": prediction.unknown_score,
        }
    )

if len(uploads) > 1:
    columns = ["photo", "label", "probability", "ms", "error", "nearest", "unknown_score"]
    table = pd.DataFrame(rows, columns=columns)
    st.subheader("All photos")
    st.dataframe(
        table,
        hide_index=True,
        key="predict_table",
        column_config={
            "probability": st.column_config.ProgressColumn(
                min_value=0.0, max_value=1.0, format="percent"
            ),
            "ms": st.column_config.NumberColumn("time (ms)", format="%.1f"),
        },
    )
    st.download_button(
        "Download as CSV",
        table.to_csv(index=False),
        file_name=f"predictions-{Path(run_id).name}.csv",
        mime="text/csv",
        key="predict_csv",
        icon=":material/download:",
    )
