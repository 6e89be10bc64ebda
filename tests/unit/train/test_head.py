"""engine.train.head: the learning-rate schedule and class weights of retrain.py's new layer."""

from __future__ import annotations

import pytest

from engine.train.config import TrainConfig
from engine.train.head import class_weight_vector, learning_rate_at


def test_cosine_schedule_starts_at_rate_and_decays_towards_zero() -> None:
    config = TrainConfig(learning_rate=0.1, lr_schedule="cosine")
    assert learning_rate_at(config, 1, 100) == pytest.approx(0.1)
    assert learning_rate_at(config, 51, 100) == pytest.approx(0.05)
    assert learning_rate_at(config, 100, 100) < 0.001


def test_balanced_class_weights_are_inverse_frequency() -> None:
    weights = class_weight_vector([30, 10], "balanced")
    assert weights.tolist() == pytest.approx([40 / 60, 40 / 20])
    assert class_weight_vector([30, 10], "none").tolist() == [1.0, 1.0]
