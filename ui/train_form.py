"""The Train page's settings: the backbone picker and the form that builds a TrainConfig.

The form's limits and help come from `TrainConfig`'s field metadata
(`ui.render.setting_input`), and what it returns is a validated
`TrainConfig`, so a bad value is an error in the form, never a failed run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from engine.core.errors import StudioError
from engine.models import scratch
from engine.models.registry import Backbone
from engine.train.config import HEAD_FITS, TrainConfig
from ui.errors import public_text, show_error
from ui.render import render_split_inputs, setting_input

HEAD_FIT_LABELS = {
    "lbfgs": "L-BFGS: converges, L2 chosen on validation",
    "sgd": "SGD: retrain.py's steps",
}


def backbone_label(backbone: Backbone) -> str:
    """`efficientnet_lite0 · 224 px · ready` (or `weights missing`, or `trained from scratch`)."""
    ready = "ready" if backbone.weights_available() else "weights missing"
    if not backbone.pretrained:
        ready = "trained from scratch"
    return f"{backbone.name} · {backbone.input_size} px · {ready}"


def render_backbone_picker(backbones: list[Backbone], default: str) -> Backbone:
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
    if not backbone.pretrained:
        st.caption(
            "Every layer is trained on your photos (augmentation on): a step is one batch, and "
            "each epoch logs every layer's histograms. The form starts at 500 steps of 32 photos "
            "(60 epochs of the demo, under a minute); retrain.py's 4,000 steps of 100 would be "
            "over a thousand epochs."
        )
    if not backbone.weights_available():
        st.warning(
            public_text(f"No ImageNet weights for {name} on this machine: {backbone.weights_hint()}")
        )
    return backbone


def _slider(name: str, label: str, *, key: str, container: Any) -> int:
    rule = TrainConfig.setting(name)
    return container.slider(
        label,
        int(rule.low or 0),
        int(rule.high or 100),
        int(TrainConfig.default(name)),
        key=key,
        help=rule.help,
    )


def render_train_settings(
    backbone: Backbone, image_dir: Path, *, disabled: bool, ray: str | None = None
) -> TrainConfig | None:
    """The settings form; returns a validated TrainConfig when Start is pressed, else None.

    A setting training would refuse is shown as an error under the form, and
    nothing starts.

    Args:
        backbone: the chosen backbone.
        image_dir: the dataset folder to train on.
        disabled: grey out Start (a job runs, or the weights are missing).
        ray: the Ray cluster to compute the features on (`ui.cluster`). Defaults to None.
    """
    # A from-scratch network gets its own starting values (and widget keys, so
    # switching backbones shows each kind's own defaults).
    recipe = {} if backbone.pretrained else scratch.FORM_DEFAULTS
    suffix = "" if backbone.pretrained else "_scratch"

    def default(name: str) -> Any:
        return recipe.get(name, TrainConfig.default(name))

    with st.form("train_settings", border=True):
        head_fit = st.radio(
            "Head fit",
            HEAD_FITS,
            index=HEAD_FITS.index(default("head_fit")),
            format_func=HEAD_FIT_LABELS.get,
            horizontal=True,
            key="train_head_fit",
            help=TrainConfig.setting("head_fit").help,
        )
        first = st.columns(4)
        size = first[0].selectbox(
            "Image size",
            backbone.input_sizes,
            index=backbone.input_sizes.index(backbone.input_size),
            disabled=len(backbone.input_sizes) < 2,
            key="train_image_size",
        )
        steps = setting_input(
            "how_many_training_steps", "Training steps", key="train_steps" + suffix, container=first[1],
            value=default("how_many_training_steps"),
        )  # fmt: skip
        rate = setting_input(
            "learning_rate", "Learning rate", key="train_lr", container=first[2],
            value=default("learning_rate"), format="%.4f",
        )  # fmt: skip
        batch = setting_input(
            "train_batch_size", "Batch size", key="train_batch" + suffix, container=first[3],
            value=default("train_batch_size"),
        )  # fmt: skip
        second = st.columns(4)
        interval = setting_input(
            "eval_step_interval", "Eval every (steps)", key="train_eval_interval",
            container=second[0], value=default("eval_step_interval"),
        )  # fmt: skip
        seed = setting_input(
            "seed", "Seed (empty: random)", key="train_seed", container=second[1], value=None
        )
        blocks = setting_input(
            "fine_tune_blocks", "Fine-tune last blocks", key="train_fine_tune_blocks",
            container=second[2], value=default("fine_tune_blocks"),
        )  # fmt: skip
        tune_rate = setting_input(
            "fine_tune_learning_rate", "Fine-tune learning rate", key="train_fine_tune_lr",
            container=second[3], value=default("fine_tune_learning_rate"), format="%.5f",
        )  # fmt: skip
        validation_pct, testing_pct = render_split_inputs()
        st.markdown("**Augmentation** (bypasses the bottleneck cache, so it is slower)")
        aug = st.columns(4)
        flip = aug[0].checkbox(
            "Flip left-right", default("flip_left_right"), key="train_flip",
            help=TrainConfig.setting("flip_left_right").help,
        )  # fmt: skip
        crop = _slider("random_crop", "Random crop %", key="train_crop", container=aug[1])
        scale = _slider("random_scale", "Random scale %", key="train_scale", container=aug[2])
        bright = _slider(
            "random_brightness", "Random brightness %", key="train_bright", container=aug[3]
        )
        unknown = setting_input(
            "unknown_false_rejection", "Unknown: share of in-class photos rejected",
            key="train_unknown", container=st.columns(4)[0],
            value=default("unknown_false_rejection"), step=0.01, format="%.2f",
        )  # fmt: skip
        export = st.checkbox(
            "Also export a SavedModel, an int8 TFLite and an ONNX model",
            True,
            key="train_export",
            help="Every run writes a float TFLite model (what Predict uses) as soon as the head is "
            "fitted; model.keras follows while the model is already usable. This adds the "
            "SavedModel, the int8 and the ONNX model, each scored on the test photos.",
        )
        submitted = st.form_submit_button(
            "Start training", type="primary", icon=":material/play_arrow:", disabled=disabled
        )
    if not submitted:
        return None
    config = TrainConfig(
        image_dir=str(image_dir),
        architecture=backbone.name,
        image_size=int(size),
        head_fit=str(head_fit),
        how_many_training_steps=int(steps),
        learning_rate=float(rate),
        train_batch_size=int(batch),
        eval_step_interval=int(interval),
        validation_percentage=int(validation_pct),
        testing_percentage=int(testing_pct),
        flip_left_right=bool(flip),
        random_crop=int(crop),
        random_scale=int(scale),
        random_brightness=int(bright),
        fine_tune_blocks=int(blocks),
        fine_tune_learning_rate=float(tune_rate),
        seed=None if seed is None else int(seed),
        export=bool(export),
        unknown_false_rejection=float(unknown),
        ray=ray,
    )
    try:
        return config.validate()
    except StudioError as error:
        show_error(error, prefix="Not started: ")
        return None
