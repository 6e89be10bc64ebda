"""engine.inference: a run's model loaded once; top-k, timing, batches, LiteRT without TF.

The run here is made by hand (a real, tiny Keras classifier that takes uint8
images and scores "redness"), so these tests need no training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ImageError, StudioError
from engine.inference import Predictor

from .conftest import REPO_ROOT
from .factories import image_bytes, make_image

LABELS = ["red", "green", "blue"]
SIZE = 32


def _tiny_model():
    """uint8 image -> mean colour -> softmax over (red, green, blue)."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)  # casts the uint8 input to float
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(3, name="final_result")
    logits = dense(x)
    dense.set_weights([np.eye(3, dtype=np.float32) * 20.0, np.zeros(3, np.float32)])
    return keras.Model(inputs, keras.layers.Softmax()(logits))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("run")
    model = _tiny_model()
    model.save(folder / "model.keras")
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (folder / "config.json").write_text(
        json.dumps({"input_size": SIZE, "crop_fraction": 0.875, "resample": "bicubic"})
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (folder / "export").mkdir()
    (folder / "export" / "model.tflite").write_bytes(converter.convert())
    return folder


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for index, name in enumerate(["red", "green", "blue"]):
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(image_bytes(make_image(index, 0)))
        out[name] = path
    return out


@pytest.mark.parametrize("prefer", ["litert", "tensorflow"])
def test_predict_gives_the_right_label_first_with_probabilities(run_dir, photos, prefer) -> None:
    predictor = Predictor.from_run(run_dir, prefer=prefer)
    for name, path in photos.items():
        prediction = predictor.predict(str(path), top_k=3)
        assert prediction.label == name
        assert [p for _, p in prediction.top_k] == sorted((p for _, p in prediction.top_k), reverse=True)
        assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-4)


def test_from_run_prefers_the_exported_tflite_and_falls_back_to_keras(run_dir) -> None:
    assert Predictor.from_run(run_dir).runtime == "litert"
    assert Predictor.from_run(run_dir, prefer="tensorflow").runtime == "tensorflow"


def test_preprocessing_comes_from_the_run_config(run_dir) -> None:
    predictor = Predictor.from_run(run_dir)
    assert (predictor.input_size, predictor.crop_fraction, predictor.resample) == (
        SIZE,
        0.875,
        "bicubic",
    )


def test_top_k_limits_the_labels_and_timing_is_reported(run_dir, photos) -> None:
    prediction = Predictor.from_run(run_dir).predict(photos["green"].read_bytes(), top_k=2)
    assert len(prediction.top_k) == 2
    assert 0 < prediction.seconds < 5


def test_predict_many_lists_a_bad_file_and_labels_the_rest(run_dir, photos, tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    table = Predictor.from_run(run_dir).predict_many(
        [str(photos["red"]), str(text), str(photos["blue"])]
    )
    assert table["label"].tolist()[::2] == ["red", "blue"]
    assert table["error"].isna().tolist() == [True, False, True]
    assert table.loc[1, "source"] == str(text)


def test_predict_of_a_non_image_raises_image_error(run_dir, tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not")
    with pytest.raises(ImageError):
        Predictor.from_run(run_dir).predict(str(bad))


def test_labels_that_do_not_match_the_model_are_refused(run_dir, tmp_path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(StudioError, match="3 outputs but the labels file has 2"):
        Predictor.from_files(run_dir / "export" / "model.tflite", labels)


def test_run_without_a_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(StudioError, match="no model.keras"):
        Predictor.from_run(tmp_path)


def test_litert_prediction_never_imports_tensorflow(run_dir, photos) -> None:
    code = (
        "import sys\n"
        "from engine.inference import Predictor\n"
        f"p = Predictor.from_run({str(run_dir)!r})\n"
        f"print(p.predict({str(photos['blue'])!r}).label, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["blue", "False"]
