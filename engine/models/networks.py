"""Building a backbone's Keras network, and choosing which of its blocks train.

`build_feature_extractor` and `build_imagenet_classifier` give the frozen
network, uint8 RGB in (as made by `Backbone.prepare`), its normalisation
inside. `set_trainable_blocks` unfreezes the last blocks for fine-tuning.

TensorFlow and Keras are imported only inside the functions that build models.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from engine.core.errors import StudioError
from engine.models.registry import Backbone, check_weights_choice, get_backbone, list_backbones

# Layer-name patterns that tell which block a layer belongs to (see `set_trainable_blocks`).
_BLOCK_PATTERNS: dict[str, re.Pattern[str]] = {
    "efficientnet_lite": re.compile(r"^block(\d+)_"),
    "mobilenet": re.compile(r"^conv_(?:dw|pw|pad)_(\d+)"),
    "mobilenet_v2": re.compile(r"^block_(\d+)_|^expanded_conv_"),
    "mobilenet_v3": re.compile(r"^expanded_conv_(\d+)_|^expanded_conv_"),
    "efficientnet": re.compile(r"^block(\d+[a-z])_"),
}
# Inception's convolutions have numbered generic names; its blocks end at each `mixedN` layer.
_BLOCK_END_PATTERNS: dict[str, re.Pattern[str]] = {"inception_v3": re.compile(r"^mixed\d+$")}


def build_feature_extractor(
    name: str, *, input_size: int | None = None, weights: str | None = "imagenet"
) -> Any:
    """The frozen backbone as a feature extractor, normalisation included.

    Args:
        name: a registry name.
        input_size: the square input side; one of the backbone's `input_sizes`.
            Defaults to the backbone's `input_size`.
        weights: "imagenet" for the pretrained weights, None for random ones
            (tests only). Defaults to "imagenet".

    Returns:
        A non-trainable `keras.Model` from `(None, S, S, 3)` uint8 RGB (as made
        by `Backbone.prepare`) to `(None, feature_size)` float32.

    Raises:
        StudioError: unknown name, size or weights value, or weights that are
            unavailable (the message says which file to put where).
    """
    return _build_frozen(name, input_size, weights, top=False)


def build_imagenet_classifier(
    name: str, *, input_size: int | None = None, weights: str | None = "imagenet"
) -> Any:
    """The backbone with its original 1000-class ImageNet classifier.

    Args:
        name: a registry name.
        input_size: the square input side. Defaults to the backbone's `input_size`.
        weights: "imagenet" or None (random, tests only). Defaults to "imagenet".

    Returns:
        A `keras.Model` from `(None, S, S, 3)` uint8 RGB to `(None, 1000)` probabilities,
        in the order of `imagenet_labels()`.

    Raises:
        StudioError: as `build_feature_extractor`.
    """
    return _build_frozen(name, input_size, weights, top=True)


def _build_frozen(name: str, input_size: int | None, weights: str | None, *, top: bool) -> Any:
    """The backbone, frozen, uint8 in: features (`top=False`) or ImageNet probabilities."""
    backbone = get_backbone(name)
    size = backbone.resolve_size(input_size)
    check_weights_choice(weights)
    model = backbone.weights.build(size, top=top, weights=weights)
    model.trainable = False
    return model


def _leaf_layers(model: Any) -> list[Any]:
    out: list[Any] = []
    for layer in model.layers:
        inner = getattr(layer, "layers", None)
        if inner:
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _backbone_of(extractor: Any) -> Backbone:
    # Models built here are named after their backbone; the name survives save and load.
    name = str(getattr(extractor, "name", ""))
    for suffix in ("_features", "_imagenet"):
        name = name.removesuffix(suffix)
    known = {backbone.name: backbone for backbone in list_backbones()}
    if name in known:
        return known[name]
    raise StudioError(
        f"cannot tell the blocks of model {getattr(extractor, 'name', extractor)!r}; "
        "pass a model made by build_feature_extractor"
    )


def layer_blocks(extractor: Any) -> list[tuple[str, list[Any]]]:
    """The extractor's layers grouped into blocks, input side first.

    The stem forms the first group; layers after the last block (the head
    convolution, pooling) join the last block.

    Args:
        extractor: a model from `build_feature_extractor`.

    Returns:
        `(block id, layers)` pairs in network order.
    """
    family = _backbone_of(extractor).family
    start = _BLOCK_PATTERNS.get(family)
    end = _BLOCK_END_PATTERNS.get(family)
    groups: list[tuple[str, list[Any]]] = [("stem", [])]
    pending: list[Any] = []
    for layer in _leaf_layers(extractor):
        if end is not None:
            pending.append(layer)
            if end.match(layer.name):
                groups.append((layer.name, pending))
                pending = []
            continue
        match = start.match(layer.name) if start else None
        if match:
            key = match.group(1) or match.group(0)
            if groups[-1][0] != key:
                groups.append((key, []))
        groups[-1][1].append(layer)
    if pending:
        groups[-1][1].extend(pending)
    return [g for g in groups if g[1]]


def set_trainable_blocks(extractor: Any, n: int) -> int:
    """Unfreeze the last `n` blocks of a feature extractor for fine-tuning.

    BatchNormalization layers stay frozen (so they keep running in inference
    mode). Recompile any model holding the extractor after calling this.

    Args:
        extractor: a model from `build_feature_extractor`.
        n: how many blocks, counted from the output side; 0 freezes everything.

    Returns:
        The number of trainable parameters (scalar values) in the extractor afterwards.

    Raises:
        StudioError: `n` is negative or not an integer, or the model has no known blocks.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise StudioError(f"n={n!r} must be a whole number of blocks >= 0")
    groups = layer_blocks(extractor)
    chosen = (
        {id(layer) for _key, layers in groups[len(groups) - n :] for layer in layers} if n else set()
    )
    extractor.trainable = True
    for layer in _leaf_layers(extractor):
        is_bn = type(layer).__name__ == "BatchNormalization"
        layer.trainable = id(layer) in chosen and not is_bn
    return int(sum(int(np.prod(w.shape)) for w in extractor.trainable_weights))
