"""engine.models.networks: building frozen uint8 networks, and which blocks fine-tuning unfreezes."""

from __future__ import annotations

import pytest

from engine.core.errors import StudioError
from engine.models.networks import (
    _leaf_layers,
    build_feature_extractor,
    layer_blocks,
    set_trainable_blocks,
)


def test_weights_value_other_than_imagenet_or_none_is_refused() -> None:
    with pytest.raises(StudioError, match="weights='random'"):
        build_feature_extractor("mobilenet_0.25_128", weights="random")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "size"),
    [("efficientnet_lite0", 128), ("mobilenet_0.25_128", 128), ("mobilenet_v2", 96),
     ("mobilenet_v3_small", 96), ("efficientnet_b0", 224), ("inception_v3", 299)],
)  # fmt: skip
def test_set_trainable_blocks_unfreezes_more_with_more_blocks_and_never_batchnorm(
    name: str, size: int
) -> None:
    extractor = build_feature_extractor(name, input_size=size, weights=None)
    counts = [set_trainable_blocks(extractor, n) for n in (0, 1, 2)]
    assert counts[0] == 0 < counts[1] < counts[2]
    everything = set_trainable_blocks(extractor, 1000)
    assert everything > counts[2]
    trainable_bn = [
        layer.name
        for layer in _leaf_layers(extractor)
        if type(layer).__name__ == "BatchNormalization" and layer.trainable
    ]
    assert trainable_bn == []


def test_set_trainable_blocks_refuses_a_negative_count() -> None:
    with pytest.raises(StudioError, match="n=-1"):
        set_trainable_blocks(object(), -1)


@pytest.mark.slow
def test_lite0_blocks_are_the_stem_and_sixteen_mbconv_blocks() -> None:
    extractor = build_feature_extractor("efficientnet_lite0", input_size=128, weights=None)
    keys = [key for key, _layers in layer_blocks(extractor)]
    assert keys == ["stem", *[str(i) for i in range(1, 17)]]
