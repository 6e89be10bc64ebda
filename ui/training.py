"""The Train page's pieces: the settings form, the live view and the final report.

The page stays a short script; these helpers draw and return what the user chose.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from engine.progress import format_duration
from ui import cached
from ui.follow import Followed, time_left
from ui.render import confusion_figure, render_chart, render_curves, render_split_inputs

PER_CLASS_COLUMNS = ["label", "precision", "recall", "f1", "support"]
# report.json keys of the models a run scores on its test split, in display order.
SCORED_MODELS = {
    "keras": "Keras (model.keras)",
    "saved_model": "SavedModel",
    "tflite": "TFLite float",
    "tflite_int8": "TFLite int8",
}
RUNTIME_NAMES = {"litert": "LiteRT", "tensorflow": "TensorFlow"}


@dataclass(frozen=True)
class TrainSettings:
    """What the user chose: the backbone and the trainer's command-line arguments."""

    architecture: str
    args: list[str]


def backbone_label(backbone: Any) -> str:
    """`efficientnet_lite0 · 224 px · ready` (or `weights missing`)."""
    ready = "ready" if backbone.weights_available() else "weights missing"
    return f"{backbone.name} · {backbone.input_size} px · {ready}"


def render_backbone_picker(backbones: list[Any], default: str) -> Any:
    """The architecture select box, with each backbone's availability; returns the chosen one."""
    names = [b.name for b in backbones]
    by_name = {b.name: b for b in backbones}
    name = st.selectbox(
        "Architecture",
        names,
        index=names.index(default) if default in names else 0,
        format_func=lambda n: backbone_label(by_name[n]),
        key="train_architecture",
    )
    backbone = by_name[name]
    st.caption(f"{backbone.weights_source}; {backbone.normalization}.")
    if not backbone.weights_available():
        st.warning(f"No ImageNet weights for {name} on this machine: {backbone.weights_hint()}")
    return backbone


def _flags(values: dict[str, Any]) -> list[str]:
    """`{"flip_left_right": True, "learning_rate": 0.01}` -> `["--flip_left_right", "--learning_rate", "0.01"]`."""
    args: list[str] = []
    for name, value in values.items():
        if isinstance(value, bool):
            args += [f"--{name}"] if value else []
        elif value is not None:
            args += [f"--{name}", str(value)]
    return args


def render_train_settings(
    backbone: Any, image_dir: Path, defaults: Any, *, disabled: bool
) -> TrainSettings | None:
    """The settings form; returns the settings when Start is pressed, else None.

    Args:
        backbone: the chosen `engine.backbones.Backbone`.
        image_dir: the dataset folder to train on.
        defaults: an `engine.training.TrainConfig()` (retrain.py's defaults).
        disabled: grey out Start (a job runs, or the weights are missing).
    """
    with st.form("train_settings", border=True):
        first = st.columns(4)
        size = first[0].selectbox(
            "Image size",
            backbone.input_sizes,
            index=backbone.input_sizes.index(backbone.input_size),
            disabled=len(backbone.input_sizes) < 2,
            key="train_image_size",
        )
        steps = first[1].number_input(
            "Training steps", 1, 100_000, defaults.how_many_training_steps, key="train_steps"
        )
        rate = first[2].number_input(
            "Learning rate", 1e-6, 10.0, defaults.learning_rate, format="%.4f", key="train_lr"
        )
        batch = first[3].number_input(
            "Batch size", 1, 4096, defaults.train_batch_size, key="train_batch"
        )
        second = st.columns(4)
        interval = second[0].number_input(
            "Eval every (steps)", 1, 10_000, defaults.eval_step_interval, key="train_eval_interval"
        )
        seed = second[1].number_input("Seed (empty: random)", 0, 2**31 - 1, None, key="train_seed")
        blocks = second[2].number_input(
            "Fine-tune last blocks", 0, 50, defaults.fine_tune_blocks, key="train_fine_tune_blocks"
        )
        tune_rate = second[3].number_input(
            "Fine-tune learning rate",
            1e-7,
            1.0,
            defaults.fine_tune_learning_rate,
            format="%.5f",
            key="train_fine_tune_lr",
        )
        validation_pct, testing_pct = render_split_inputs()
        st.markdown("**Augmentation** (bypasses the bottleneck cache, so it is slower)")
        aug = st.columns(4)
        flip = aug[0].checkbox("Flip left-right", defaults.flip_left_right, key="train_flip")
        crop = aug[1].slider("Random crop %", 0, 50, defaults.random_crop, key="train_crop")
        scale = aug[2].slider("Random scale %", 0, 50, defaults.random_scale, key="train_scale")
        bright = aug[3].slider(
            "Random brightness %", 0, 50, defaults.random_brightness, key="train_bright"
        )
        export = st.checkbox(
            "Also export a SavedModel and an int8 TFLite model",
            True,
            key="train_export",
            help="Every run writes model.keras and a float TFLite model (what Predict uses). "
            "This adds the SavedModel and the int8 model, each scored on the test photos.",
        )
        submitted = st.form_submit_button(
            "Start training", type="primary", icon=":material/play_arrow:", disabled=disabled
        )
    if not submitted:
        return None
    values = {
        "image_dir": str(image_dir),
        "architecture": backbone.name,
        "image_size": size,
        "how_many_training_steps": steps,
        "learning_rate": rate,
        "train_batch_size": batch,
        "eval_step_interval": interval,
        "validation_percentage": validation_pct,
        "testing_percentage": testing_pct,
        "flip_left_right": flip,
        "random_crop": crop,
        "random_scale": scale,
        "random_brightness": bright,
        "fine_tune_blocks": blocks,
        "fine_tune_learning_rate": tune_rate if blocks else None,
        "seed": seed,
        "export": export,
    }
    return TrainSettings(backbone.name, _flags(values))


def render_live(followed: Followed, state: str) -> None:
    """Progress (bottlenecks, then steps with time left) and the live curves."""
    progress = followed.progress
    if progress and (progress.get("phase") == "bottlenecks" or not followed.steps):
        # bottlenecks (and demo data, scans) before the first step: their own bar
        done, total = progress.get("done", 0), progress.get("total", 0)
        phase = str(progress.get("phase", "")).replace("-", " ").capitalize()
        st.progress(
            min(1.0, done / total) if total else 0.0,
            text=f"{phase}: {done}/{total} {progress.get('unit', 'images')}, "
            f"{format_duration(progress.get('eta_s'))} left",
        )
    step = followed.last_step
    if step is not None:
        total = step.get("total_steps") or step["step"]
        st.progress(
            min(1.0, step["step"] / total),
            text=f"Step {step['step']} of {total} · {format_duration(time_left(step))} left",
        )
        cols = st.columns(3)
        cols[0].metric("Train accuracy", f"{step['train_accuracy']:.1%}")
        cols[1].metric("Cross entropy", f"{step['cross_entropy']:.4f}")
        cols[2].metric("Images / s", f"{step.get('images_per_s', 0):.0f}")
        render_curves(followed.frame(), key="train_live")
    elif state in ("queued", "running"):
        st.caption(f"Phase: {followed.phase or 'starting'}…")


def render_report(run: Any) -> None:
    """A finished run's report: test accuracy, per-class table, confusion matrix, misses, exports."""
    if not run.report_path.exists():
        return
    report = run.read_report()
    image_dir = run.read_config().get("image_dir")
    st.metric(
        "Final test accuracy", f"{report['accuracy']:.1%}", help=f"on {report['count']} test photos"
    )
    render_runtime(run.read_config())
    left, right = st.columns(2)
    per_class = pd.DataFrame(report["per_class"], columns=PER_CLASS_COLUMNS)
    left.dataframe(per_class, hide_index=True, key="train_per_class")
    with right:
        render_chart(
            confusion_figure(report["labels"], report["confusion_matrix"]), key="train_confusion"
        )
    misses = report.get("misclassified", [])
    st.markdown(f"**Misclassified test photos** ({len(misses)})")
    gallery = []
    for miss in misses[:12]:
        png = cached.thumbnail(str(Path(image_dir or "") / miss["path"]), 0.0, 120)
        if png is not None:
            caption = f"{miss['true_label']} → {miss['predicted_label']} ({miss['confidence']:.0%})"
            gallery.append((png, caption))
    if gallery:
        st.image([png for png, _ in gallery], caption=[c for _, c in gallery], width=120)
    elif not misses:
        st.caption("None.")
    scored = scored_models_frame(report)
    if len(scored) > 1:
        st.markdown("**What each exported model costs** (scored on the same test photos)")
        st.dataframe(
            scored,
            hide_index=True,
            key="train_scored_models",
            column_config={
                "test accuracy": st.column_config.NumberColumn(format="percent"),
                "size (MB)": st.column_config.NumberColumn(format="%.2f"),
                "latency (ms, 1 photo)": st.column_config.NumberColumn(format="%.1f"),
            },
        )
    render_downloads(run)


def render_runtime(config: dict[str, Any]) -> None:
    """Which runtime computed the features, and a warning when it fell back to TensorFlow.

    Args:
        config: the run's config.json.
    """
    runtime = config.get("runtime")
    if runtime:
        decoder = config.get("bottleneck_decoder")
        st.caption(
            f"Features computed on **{RUNTIME_NAMES.get(runtime, runtime)}**"
            + (f" (decoding with {decoder})" if decoder else "")
        )
    if config.get("runtime_notice"):
        st.warning(f"LiteRT was not used: {config['runtime_notice']}", icon=":material/info:")


def scored_models_frame(report: dict[str, Any]) -> pd.DataFrame:
    """The Keras model and every export, side by side: test accuracy, size, single-photo latency.

    Args:
        report: the run's report.json.

    Returns:
        One row per scored model, in `SCORED_MODELS` order; models without figures are left out.
    """
    figures = {"keras": report.get("keras", {}), **report.get("exports", {})}
    rows = [
        {
            "model": name,
            "test accuracy": figures[key]["accuracy"],
            "size (MB)": figures[key]["size_bytes"] / 1e6 if figures[key].get("size_bytes") else None,
            "latency (ms, 1 photo)": figures[key].get("latency_ms"),
        }
        for key, name in SCORED_MODELS.items()
        if figures.get(key, {}).get("accuracy") is not None
    ]
    return pd.DataFrame(rows, columns=["model", "test accuracy", "size (MB)", "latency (ms, 1 photo)"])


def render_downloads(run: Any) -> None:
    """Download buttons for the model, the labels and every export (a SavedModel folder as a zip).

    Args:
        run: an `engine.runs.RunDir`.
    """
    files = {p.name: p for p in (run.model_path, run.labels_path) if p.is_file()}
    if run.export_dir.is_dir():
        for path in sorted(run.export_dir.iterdir()):
            name = f"{path.name}.zip" if path.is_dir() else path.name
            # export/labels.txt is the same file as the run's labels.txt
            files.setdefault(name, path)
    if not files:
        return
    st.markdown("**Downloads**")
    cols = st.columns(min(4, len(files)))
    for index, (name, path) in enumerate(files.items()):
        cols[index % len(cols)].download_button(
            name,
            data=partial(_zip_folder, path) if path.is_dir() else path.read_bytes,
            file_name=name,
            key=f"train_download_{name}",
            icon=":material/download:",
        )


def _zip_folder(folder: Path) -> bytes:
    """The folder as zip bytes (made only when its download button is pressed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()
