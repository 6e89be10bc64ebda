"""Upload limits (AppTest): the server's cap matches the engine's zip limit; Predict's own limits."""

from __future__ import annotations

import io
import math
import tomllib

import numpy as np
from PIL import Image

from engine.data.sources import MAX_ZIP_BYTES
from tests.support.app import fresh_app, open_page, png_bytes, shown, write_colour_model_run
from tests.support.cli import REPO_ROOT
from ui import limits


def uploader_limit_mb(app, key: str) -> int:
    (widget,) = [w for w in app.get("file_uploader") if w.proto.id.endswith(key)]
    return widget.proto.max_upload_size_mb


def test_server_upload_cap_is_the_engines_zip_limit() -> None:
    settings = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    cap_mb = settings["server"]["maxUploadSize"]
    assert cap_mb == limits.ZIP_UPLOAD_MB == math.ceil(MAX_ZIP_BYTES / 1024**2)
    assert cap_mb > limits.PHOTO_UPLOAD_MB


def test_the_zip_uploader_takes_what_the_importer_takes() -> None:
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Upload a zip").run()
    assert uploader_limit_mb(app, "dataset_zip") == limits.ZIP_UPLOAD_MB


def noise_png(megabytes: float) -> bytes:
    """A PNG of random pixels (incompressible), about `megabytes` MiB."""
    side = int(math.sqrt(megabytes * 1024**2 / 3))
    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def test_predict_skips_photos_over_the_size_limit_and_predicts_at_most_the_count(monkeypatch) -> None:
    monkeypatch.setattr(limits, "PHOTO_UPLOAD_MB", 1)
    monkeypatch.setattr(limits, "MAX_PREDICT_PHOTOS", 2)
    write_colour_model_run()
    app = open_page("predict")
    assert uploader_limit_mb(app, "predict_uploads") == 1
    app.file_uploader(key="predict_uploads").set_value(
        [
            ("huge.png", noise_png(1.5), "image/png"),
            ("red.png", png_bytes((220, 20, 20)), "image/png"),
            ("blue.png", png_bytes((20, 20, 220)), "image/png"),
            ("red2.png", png_bytes((200, 30, 30)), "image/png"),
        ]
    )
    app.run()
    assert not app.exception
    messages = [shown(e.value) for e in app.error]
    assert any("huge.png" in m and "1 MB limit" in m for m in messages)
    assert any("3 photos uploaded; only the first 2" in m for m in messages)
    assert [shown(c) for image in app.image for c in image.captions] == ["red.png", "blue.png"]
