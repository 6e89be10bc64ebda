"""The backbone registry: entries, geometry, weights lookup and download, building, fine-tuning blocks."""

from __future__ import annotations

import functools
import http.server
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import backbones
from engine.errors import StudioError

from .loopback import serve_on_loopback

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED_NAMES = [
    "efficientnet_lite0",
    *[f"mobilenet_{a}_{s}" for a in ("1.0", "0.75", "0.50", "0.25") for s in (224, 192, 160, 128)],
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "inception_v3",
]


def test_registry_lists_every_backbone_default_first() -> None:
    names = [b.name for b in backbones.list_backbones()]
    assert names == EXPECTED_NAMES
    assert names[0] == backbones.DEFAULT_BACKBONE


def test_unknown_backbone_error_lists_the_known_names() -> None:
    with pytest.raises(StudioError, match="'resnet9' is unknown.*mobilenet_v2"):
        backbones.get_backbone("resnet9")


def test_default_backbone_weights_are_available_offline() -> None:
    assert backbones.get_backbone("efficientnet_lite0").weights_available()


def test_unsupported_input_size_is_refused_with_the_allowed_sizes() -> None:
    with pytest.raises(StudioError, match=r"input_size=200.*\[224, 192, 160, 128\]"):
        backbones.build_feature_extractor("efficientnet_lite0", input_size=200, weights=None)


def test_weights_value_other_than_imagenet_or_none_is_refused() -> None:
    with pytest.raises(StudioError, match="weights='random'"):
        backbones.build_feature_extractor("mobilenet_0.25_128", weights="random")


@pytest.mark.parametrize(
    ("name", "size", "crop"),
    [
        ("efficientnet_lite0", 224, 0.875),
        ("efficientnet_lite0", 128, 0.875),
        ("mobilenet_0.25_128", 128, 1.0),
    ],
)
def test_prepare_gives_uint8_square_of_the_central_crop(name: str, size: int, crop: float) -> None:
    # Left third red, middle third green, right third blue: a central crop keeps mostly green.
    pixels = np.zeros((90, 300, 3), np.uint8)
    pixels[:, :100, 0] = 255
    pixels[:, 100:200, 1] = 255
    pixels[:, 200:, 2] = 255
    out = backbones.get_backbone(name).prepare(Image.fromarray(pixels), size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert out[:, :, 1].mean() > 250 and out[:, :, 0].mean() < 5 and out[:, :, 2].mean() < 5
    assert backbones.get_backbone(name).crop_fraction == crop


def test_imagenet_labels_are_the_1000_classes_in_output_order() -> None:
    labels = backbones.imagenet_labels()
    assert len(labels) == 1000
    assert (labels[0], labels[985], labels[698]) == ("tench", "daisy", "palace")
    assert backbones.imagenet_synsets()[985] == "n11939491"


def test_weights_hint_names_the_exact_file_and_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    hint = backbones.get_backbone("mobilenet_0.25_128").weights_hint()
    assert "mobilenet_2_5_128_tf_no_top.h5" in hint
    assert str(tmp_path / "cache" / "weights") in hint and str(tmp_path / "keras" / "models") in hint
    v2 = backbones.get_backbone("mobilenet_v2").weights_hint(160)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5" in v2


@pytest.mark.parametrize("folder", ["cache/weights", "keras/models"])
def test_weights_file_in_a_known_folder_makes_a_keras_backbone_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    backbone = backbones.get_backbone("mobilenet_0.25_128")
    assert not backbone.weights_available()
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "mobilenet_2_5_128_tf_no_top.h5").write_bytes(b"h5")
    assert backbone.weights_available()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def weights_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server standing in for Keras' download site; yields (base URL, served root)."""
    root = tmp_path / "site"
    root.mkdir()
    with serve_on_loopback(functools.partial(_QuietHandler, directory=str(root))) as url:
        yield url, root


@pytest.mark.slow
def test_keras_weights_are_downloaded_from_the_configured_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_server: tuple[str, Path]
) -> None:
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    base_url, root = weights_server
    monkeypatch.setenv("RETRAIN_STUDIO_KERAS_WEIGHTS_URL", base_url)
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    source = keras.applications.MobileNet(
        input_shape=(128, 128, 3), alpha=0.25, include_top=False, weights=None, pooling="avg"
    )
    served = root / "tensorflow/keras-applications/mobilenet/mobilenet_2_5_128_tf_no_top.h5"
    served.parent.mkdir(parents=True)
    with h5py.File(served, "w") as handle:  # Keras' own download files are legacy h5 weights
        legacy_h5_format.save_weights_to_hdf5_group(handle, source)

    extractor = backbones.build_feature_extractor("mobilenet_0.25_128", weights="imagenet")

    image = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    expected = source(image.astype("float32") / 127.5 - 1.0, training=False)
    np.testing.assert_allclose(extractor(image), expected, atol=1e-5)
    assert (tmp_path / "keras" / "models" / served.name).is_file()
    assert backbones.get_backbone("mobilenet_0.25_128").weights_available()


def test_failed_download_says_which_file_to_put_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_server: tuple[str, Path]
) -> None:
    base_url, _root = weights_server  # serves nothing: every file is a 404
    monkeypatch.setenv("RETRAIN_STUDIO_KERAS_WEIGHTS_URL", base_url)
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(StudioError) as caught:
        backbones.build_feature_extractor("mobilenet_0.25_128", weights="imagenet")
    message = str(caught.value)
    assert "cannot download" in message and base_url in message
    assert "put mobilenet_2_5_128_tf_no_top.h5 (from " in message
    assert str(tmp_path / "cache" / "weights") in message


@pytest.mark.slow
@pytest.mark.parametrize("backbone", backbones.list_backbones(), ids=lambda b: b.name)
def test_every_architecture_builds_a_uint8_feature_extractor(backbone: backbones.Backbone) -> None:
    size = min(backbone.input_sizes)
    extractor = backbones.build_feature_extractor(backbone.name, input_size=size, weights=None)
    features = np.asarray(extractor(np.zeros((2, size, size, 3), np.uint8)))
    assert extractor.input.dtype == "uint8"
    assert features.shape == (2, backbone.feature_size) and features.dtype == np.float32
    assert extractor.trainable_weights == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "size"),
    [("efficientnet_lite0", 128), ("mobilenet_0.25_128", 128), ("mobilenet_v2", 96),
     ("mobilenet_v3_small", 96), ("efficientnet_b0", 224), ("inception_v3", 299)],
)  # fmt: skip
def test_set_trainable_blocks_unfreezes_more_with_more_blocks_and_never_batchnorm(
    name: str, size: int
) -> None:
    extractor = backbones.build_feature_extractor(name, input_size=size, weights=None)
    counts = [backbones.set_trainable_blocks(extractor, n) for n in (0, 1, 2)]
    assert counts[0] == 0 < counts[1] < counts[2]
    everything = backbones.set_trainable_blocks(extractor, 1000)
    assert everything > counts[2]
    trainable_bn = [
        layer.name
        for layer in backbones._leaf_layers(extractor)
        if type(layer).__name__ == "BatchNormalization" and layer.trainable
    ]
    assert trainable_bn == []


def test_set_trainable_blocks_refuses_a_negative_count() -> None:
    with pytest.raises(StudioError, match="n=-1"):
        backbones.set_trainable_blocks(object(), -1)


@pytest.mark.slow
def test_lite0_blocks_are_the_stem_and_sixteen_mbconv_blocks() -> None:
    extractor = backbones.build_feature_extractor("efficientnet_lite0", input_size=128, weights=None)
    keys = [key for key, _layers in backbones.layer_blocks(extractor)]
    assert keys == ["stem", *[str(i) for i in range(1, 17)]]


def _photos(backbone: backbones.Backbone) -> np.ndarray:
    from engine import images

    return np.stack(
        [backbone.prepare(images.load_image(FIXTURES / f"{n}.jpg")) for n in ("flower", "china")]
    )


@pytest.mark.slow
def test_converted_lite0_classifies_real_photos_as_daisy_and_palace() -> None:
    classifier = backbones.build_imagenet_classifier("efficientnet_lite0")
    probabilities = np.asarray(classifier(_photos(backbones.get_backbone("efficientnet_lite0"))))
    assert probabilities.argmax(axis=1).tolist() == [985, 698]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_lite0_conversion_is_cached_by_checkpoint_hash_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import _lite0

    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    first = backbones.build_feature_extractor("efficientnet_lite0", input_size=128)
    cached = _lite0.cached_weights_path(_lite0.checkpoint_path())
    assert cached.parent == tmp_path / "cache" / "backbones" and cached.is_file()
    stamp = cached.stat().st_mtime_ns
    # A checkpoint that cannot be read proves the second build used the cache alone.
    monkeypatch.setattr(_lite0, "convert_checkpoint", lambda *a: pytest.fail("converted twice"))
    second = backbones.build_feature_extractor("efficientnet_lite0", input_size=128)
    batch = np.random.default_rng(1).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    np.testing.assert_allclose(first(batch), second(batch), atol=1e-6)
    assert cached.stat().st_mtime_ns == stamp
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]
