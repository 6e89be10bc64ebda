"""retrain.py's final layer: a dense softmax layer on the features, and its loss.

The head is optional dropout then one dense layer, initialised as retrain.py
did; `assemble_model` puts it behind the backbone into the run's model (raw
RGB uint8 in, probabilities out). `learning_rate_at` and
`class_weight_vector` are the schedule and the loss weights of its fit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.train.config import CLASS_WEIGHTS, TrainConfig


def learning_rate_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """The head's learning rate at 1-based `step`.

    Args:
        config: the run settings (`learning_rate`, `lr_schedule`).
        step: the step, 1..total_steps.
        total_steps: steps in the run.

    Returns:
        The rate.
    """
    if config.lr_schedule == "cosine":
        progress = (step - 1) / max(1, total_steps)
        return 0.5 * config.learning_rate * (1.0 + math.cos(math.pi * progress))
    return config.learning_rate


def class_weight_vector(counts: list[int], mode: str) -> np.ndarray:
    """Loss weight per class.

    Args:
        counts: training images per class.
        mode: "none" (all 1) or "balanced" (total / (classes * count)).

    Returns:
        float32 weights, one per class.

    Raises:
        ValueError: for an unknown mode.
    """
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"class_weights={mode!r} is unknown; choose one of {CLASS_WEIGHTS}")
    counts_arr = np.asarray(counts, dtype=np.float64)
    if mode == "none" or counts_arr.sum() == 0:
        return np.ones(len(counts), dtype=np.float32)
    weights = counts_arr.sum() / (len(counts) * np.maximum(counts_arr, 1))
    return weights.astype(np.float32)


class Head:
    """retrain.py's final layer: optional dropout, then a dense softmax layer."""

    def __init__(self, class_count: int, feature_size: int, dropout: float, seed: int) -> None:
        import keras

        self.dropout = keras.layers.Dropout(dropout, seed=seed, name="dropout") if dropout else None
        # retrain.py's initialisation: tiny truncated-normal weights, zero biases.
        self.dense = keras.layers.Dense(
            class_count,
            name="final_result",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.001, seed=seed),
            bias_initializer="zeros",
        )
        self.dense.build((None, feature_size))

    def logits(self, x: Any, training: bool) -> Any:
        if self.dropout is not None:
            x = self.dropout(x, training=training)
        return self.dense(x)

    @property
    def variables(self) -> list[Any]:
        return [self.dense.kernel, self.dense.bias]


OUTPUT_NAME = "probabilities"


def assemble_model(
    extractor: Any, head: Head, name: str, size: int, *, output_name: str = OUTPUT_NAME
) -> Any:
    """The run's model: uint8 RGB prepared images in, class probabilities out.

    Args:
        extractor: the feature extractor.
        head: the trained head.
        name: the backbone's name (the model is named `retrained_<name>`).
        size: the input side.
        output_name: the softmax layer's name (retrain.py's `--final_tensor_name`).
            Defaults to "probabilities".
    """
    import keras

    inputs = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = extractor(inputs, training=False)
    if head.dropout is not None:
        x = head.dropout(x)
    logits = head.dense(x)
    probabilities = keras.layers.Softmax(name=output_name)(logits)
    return keras.Model(inputs, probabilities, name=f"retrained_{name}")
