"""engine.models.loading: LiteRT matches Keras for every backbone that converts, and falls back when not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import StudioError
from engine.data.images import load_image
from engine.models.loading import (
    PARITY_TOLERANCE,
    convert_to_tflite,
    load_feature_runtime,
    load_imagenet_runtime,
    tflite_cache_path,
)
from engine.models.networks import build_feature_extractor
from engine.models.registry import Backbone
from engine.models.runtime import TensorFlowFeatureRuntime
from tests.support.cli import REPO_ROOT
from tests.support.factories import FIXTURES


def _photos(backbone: Backbone, size: int) -> np.ndarray:
    return np.stack(
        [backbone.prepare(load_image(FIXTURES / f"{n}.jpg"), size) for n in ("flower", "china")]
    )


@pytest.mark.slow
def test_default_backbone_runs_on_litert_matching_keras_on_real_photos() -> None:
    loaded = load_feature_runtime("efficientnet_lite0")
    assert (loaded.runtime, loaded.notice, loaded.input_size) == ("litert", None, 224)
    batch = _photos(loaded.backbone, 224)
    keras_features = np.asarray(build_feature_extractor("efficientnet_lite0")(batch))
    features = loaded.features(batch)
    assert features.shape == (2, 1280) and features.dtype == np.float32
    assert np.max(np.abs(features - keras_features)) < PARITY_TOLERANCE
    verdict = json.loads(Path(str(loaded.model_path) + ".json").read_text())
    assert verdict["ok"] and verdict["max_abs_diff"] < PARITY_TOLERANCE


@pytest.mark.slow
def test_cached_litert_extractor_loads_without_importing_tensorflow() -> None:
    load_feature_runtime("efficientnet_lite0")  # converts once if not cached yet
    code = (
        "import sys, numpy as np\n"
        "from engine.models.loading import load_feature_runtime\n"
        "r = load_feature_runtime('efficientnet_lite0')\n"
        "f = r.features(np.zeros((3, 224, 224, 3), np.uint8))\n"
        "print(r.runtime, f.shape, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.stdout.strip().splitlines()[-1] == "litert (3, 1280) False"


@pytest.mark.slow
def test_imagenet_classifier_on_litert_labels_the_photos() -> None:
    loaded = load_imagenet_runtime("efficientnet_lite0")
    assert loaded.runtime == "litert" and loaded.feature_size == 1000
    probabilities = loaded.features(_photos(loaded.backbone, 224))
    assert probabilities.argmax(axis=1).tolist() == [985, 698]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "size"),
    [("efficientnet_lite0", 128), ("mobilenet_1.0_128", 128), ("mobilenet_0.25_128", 128),
     ("mobilenet_v2", 96), ("mobilenet_v3_small", 96), ("mobilenet_v3_large", 96),
     ("efficientnet_b0", 224), ("inception_v3", 299)],
)  # fmt: skip
def test_litert_features_match_keras_for_every_architecture(name: str, size: int) -> None:
    loaded = load_feature_runtime(name, input_size=size, weights=None)
    assert loaded.runtime == "litert", loaded.notice
    # weights=None converts the very model it built; its Keras twin is kept for the comparison.
    reference = TensorFlowFeatureRuntime(loaded.backbone, size, loaded.source_model)
    batch = _photos(loaded.backbone, size)
    assert np.max(np.abs(loaded.features(batch) - reference.features(batch))) < PARITY_TOLERANCE


def _raising_converter(model: object) -> bytes:
    raise RuntimeError("converter exploded\nsecond line")


@pytest.mark.slow
def test_backbone_that_fails_to_convert_falls_back_to_tensorflow_with_a_notice() -> None:
    loaded = load_feature_runtime(
        "efficientnet_lite0", input_size=128, weights=None, converter=_raising_converter
    )
    assert loaded.runtime == "tensorflow"
    assert loaded.notice == (
        "efficientnet_lite0 runs on TensorFlow: conversion to LiteRT failed (RuntimeError: converter exploded)."
    )
    assert loaded.features(np.zeros((2, 128, 128, 3), np.uint8)).shape == (2, 1280)


@pytest.mark.slow
def test_backbone_whose_conversion_does_not_match_falls_back_and_records_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))

    # A converter that converts a different network (other random weights) cannot match.
    def other_network(model: object) -> bytes:
        stranger = build_feature_extractor("efficientnet_lite0", input_size=128, weights=None)
        return convert_to_tflite(stranger)

    loaded = load_feature_runtime("efficientnet_lite0", input_size=128, converter=other_network)
    assert loaded.runtime == "tensorflow"
    assert "LiteRT features differ from Keras by" in loaded.notice
    cached = tflite_cache_path(loaded.backbone, 128)
    assert not cached.exists()
    assert json.loads(Path(str(cached) + ".json").read_text())["ok"] is False
    # The recorded verdict is reused: no second conversion is attempted.
    again = load_feature_runtime("efficientnet_lite0", input_size=128, converter=_raising_converter)
    assert again.runtime == "tensorflow" and again.notice == loaded.notice


@pytest.mark.slow
def test_prefer_tensorflow_gives_the_tensorflow_runtime_without_notice() -> None:
    loaded = load_feature_runtime("mobilenet_0.25_128", prefer="tensorflow", weights=None)
    assert (loaded.runtime, loaded.notice, loaded.feature_size) == ("tensorflow", None, 256)


def test_unknown_runtime_is_refused_with_the_choices() -> None:
    with pytest.raises(StudioError, match="runtime='gpu' is unknown; choose one of litert, tensorflow"):
        load_feature_runtime("efficientnet_lite0", prefer="gpu")


@pytest.mark.slow
@pytest.mark.parametrize(
    "batch",
    [
        np.zeros((1, 128, 128, 3), np.float32),
        np.zeros((1, 96, 96, 3), np.uint8),
        np.zeros((128, 128, 3), np.uint8),
    ],
    ids=["float32", "wrong_size", "no_batch_axis"],
)
def test_features_refuse_a_batch_of_the_wrong_shape_or_dtype(batch: np.ndarray) -> None:
    loaded = load_feature_runtime("mobilenet_0.25_128", weights=None)
    with pytest.raises(ValueError, match=r"expected uint8 \(N, 128, 128, 3\)"):
        loaded.features(batch)
