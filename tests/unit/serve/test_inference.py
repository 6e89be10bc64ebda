"""engine.serve.inference: a run's model loaded once; top-k, timing, batches, LiteRT without TF.

Most runs here are made by hand (a real, tiny Keras classifier whose weights
score "redness", "greenness" and "blueness"), so those tests need no training
and know the right answer for sure; the last test reads the session's shared
trained run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.errors import ImageError, StudioError
from engine.serve.inference import Predictor
from tests.support.cli import REPO_ROOT
from tests.support.factories import image_bytes, make_image
from tests.support.tiny_model import TinyRun, write_colour_run

LABELS = ["red", "green", "blue"]
SIZE = 32


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A hand-set model, not the shared trained run: these fast tests need exact answers.
    return write_colour_run(tmp_path_factory.mktemp("run"), LABELS, SIZE)


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
    with pytest.raises(StudioError, match="no model yet"):
        Predictor.from_run(tmp_path)


def test_litert_prediction_never_imports_tensorflow(run_dir, photos) -> None:
    code = (
        "import sys\n"
        "from engine.serve.inference import Predictor\n"
        f"p = Predictor.from_run({str(run_dir)!r})\n"
        f"print(p.predict({str(photos['blue'])!r}).label, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["blue", "False"]


@pytest.mark.slow
def test_prediction_on_a_default_run_never_imports_tensorflow(tiny_run: TinyRun) -> None:
    run = tiny_run.run
    photo = next(Path(run.read_config()["image_dir"]).glob("red/*"))
    on_keras = Predictor.from_run(run.path, prefer="tensorflow").predict(str(photo)).label
    code = (
        "import sys\n"
        "from engine.serve.inference import Predictor\n"
        f"p = Predictor.from_run({str(run.path)!r})\n"
        f"print(p.runtime, p.predict({str(photo)!r}).label, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["litert", on_keras, "False"]
