"""EfficientNet-Lite0: the torch checkpoint converted offline, cached by hash, right on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.images import load_image
from engine.models import lite
from engine.models.lite import cached_weights_path, checkpoint_path
from engine.models.networks import build_feature_extractor, build_imagenet_classifier
from engine.models.registry import Backbone, get_backbone
from tests.support.factories import FIXTURES


def _photos(backbone: Backbone) -> np.ndarray:
    return np.stack([backbone.prepare(load_image(FIXTURES / f"{n}.jpg")) for n in ("flower", "china")])


@pytest.mark.slow
def test_converted_lite0_classifies_real_photos_as_daisy_and_palace() -> None:
    classifier = build_imagenet_classifier("efficientnet_lite0")
    probabilities = np.asarray(classifier(_photos(get_backbone("efficientnet_lite0"))))
    assert probabilities.argmax(axis=1).tolist() == [985, 698]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_lite0_conversion_is_cached_by_checkpoint_hash_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    first = build_feature_extractor("efficientnet_lite0", input_size=128)
    cached = cached_weights_path(checkpoint_path())
    assert cached.parent == tmp_path / "cache" / "backbones" and cached.is_file()
    stamp = cached.stat().st_mtime_ns
    # A checkpoint that cannot be read proves the second build used the cache alone.
    monkeypatch.setattr(lite, "convert_checkpoint", lambda *a: pytest.fail("converted twice"))
    second = build_feature_extractor("efficientnet_lite0", input_size=128)
    batch = np.random.default_rng(1).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    np.testing.assert_allclose(first(batch), second(batch), atol=1e-6)
    assert cached.stat().st_mtime_ns == stamp
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]
