"""The from-scratch baseline: a small convolutional network with no pretrained weights.

`small_cnn` is two strided 3x3 convolutions (16 then 32 filters), a global
max pool and, once a head is put on it, one dense layer: the network the
classic Keras TensorBoard tutorial trains from random weights. It is
registered like a backbone (`engine.models.registry`) so the Train page, the
CLI and `python -m engine backbones` offer it, but nothing about it is
pretrained: `engine.train.scratch` trains every layer on the user's photos,
and it always is "available" (there is no weights file to fetch).
"""

from __future__ import annotations

from typing import Any

from engine.core.errors import StudioError

NAME = "small_cnn"
FAMILY = "scratch"
INPUT_SIZES = (64, 96)
FILTERS = (16, 32)
FEATURE_SIZE = FILTERS[-1]
SOURCE = "none: trained from scratch on your photos"
# What the Train page starts a from-scratch training with instead of retrain.py's
# 4,000 steps of 100 photos (over a thousand epochs of the demo, each logging
# every layer's histograms): about 60 epochs of the demo, under a minute.
FORM_DEFAULTS = {"how_many_training_steps": 500, "train_batch_size": 32}


class ScratchWeights:
    """The `WeightsSpec` of a network with no pretrained weights: always available, random init."""

    def available(self, size: int) -> bool:
        """Always True: nothing needs downloading."""
        return True

    def hint(self, size: int, *, top: bool = False) -> str:
        """Says there is no weights file (trained from scratch)."""
        return f"{NAME} has no pretrained weights: it is trained from scratch on your photos"

    def key(self, size: int, *, top: bool = False) -> str:
        """`small_cnn-scratch-<size>` (its weights exist only inside a run's model)."""
        return f"{NAME}-scratch-{size}"

    def build(self, size: int, *, top: bool, weights: str | None) -> Any:
        """The convolutional trunk (uint8 in, `FEATURE_SIZE` features out), randomly initialised.

        Args:
            size: the square input side.
            top: must be False: there is no ImageNet classifier.
            weights: "imagenet" or None; both give random weights (there is nothing pretrained).

        Returns:
            A `keras.Model` named `small_cnn_features`.

        Raises:
            StudioError: `top` is asked for.
        """
        if top:
            raise StudioError(
                f"{NAME} has no ImageNet classifier (it is trained from scratch); "
                "choose a pretrained architecture such as efficientnet_lite0"
            )
        return build_small_cnn(size)


def build_small_cnn(size: int, *, seed: int | None = None) -> Any:
    """Conv2D(16)-Conv2D(32)-GlobalMaxPool on uint8 RGB, pixels scaled to 0..1 inside.

    Both convolutions are 3x3 with stride 2 and ReLU, which keeps a training
    step cheap on a CPU at 64-96 px.

    Args:
        size: the square input side.
        seed: seeds the initialisers. Defaults to None (Keras' global seed).

    Returns:
        A trainable `keras.Model` `(None, size, size, 3)` uint8 -> `(None, 32)` float32.
    """
    import keras

    inputs = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for number, filters in enumerate(FILTERS, start=1):
        x = keras.layers.Conv2D(
            filters, 3, strides=2, padding="same", activation="relu", name=f"conv{number}",
            kernel_initializer=keras.initializers.HeNormal(seed=seed),
        )(x)  # fmt: skip
    features = keras.layers.GlobalMaxPooling2D(name="global_max_pool")(x)
    return keras.Model(inputs, features, name=f"{NAME}_features")
