"""keras.applications backbones: weights downloaded from the configured URL (a loopback server)."""

from __future__ import annotations

import functools
import http.server
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import StudioError
from engine.models.networks import build_feature_extractor
from engine.models.registry import get_backbone
from tests.support.loopback import serve_on_loopback


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

    extractor = build_feature_extractor("mobilenet_0.25_128", weights="imagenet")

    image = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    expected = source(image.astype("float32") / 127.5 - 1.0, training=False)
    np.testing.assert_allclose(extractor(image), expected, atol=1e-5)
    assert (tmp_path / "keras" / "models" / served.name).is_file()
    assert get_backbone("mobilenet_0.25_128").weights_available()


def test_failed_download_says_which_file_to_put_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_server: tuple[str, Path]
) -> None:
    base_url, _root = weights_server  # serves nothing: every file is a 404
    monkeypatch.setenv("RETRAIN_STUDIO_KERAS_WEIGHTS_URL", base_url)
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(StudioError) as caught:
        build_feature_extractor("mobilenet_0.25_128", weights="imagenet")
    message = str(caught.value)
    assert "cannot download" in message and base_url in message
    assert "put mobilenet_2_5_128_tf_no_top.h5 (from " in message
    assert str(tmp_path / "cache" / "weights") in message
