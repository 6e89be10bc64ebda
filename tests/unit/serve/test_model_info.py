"""engine.serve.model_info: a model is known by its content, and carries its labels and preprocessing."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import StudioError
from engine.serve.inference import Predictor
from engine.serve.model_files import LiteModel
from engine.serve.model_info import info_for, model_kind, read_info, tflite_with_info
from tests.support.tiny_model import LABELS, SIZE


@pytest.mark.slow
def test_kinds_come_from_the_bytes_not_the_name(tiny_run, tmp_path: Path) -> None:
    keras_as_pb = tmp_path / "retrained_graph.pb"
    shutil.copyfile(tiny_run.run.model_path, keras_as_pb)
    tflite_as_bin = tmp_path / "model.bin"
    shutil.copyfile(tiny_run.run.tflite_path, tflite_as_bin)
    saved_model = tmp_path / "saved"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"graph")
    assert model_kind(keras_as_pb) == "keras"
    assert model_kind(tflite_as_bin) == "tflite"
    assert model_kind(saved_model) == "saved_model"


@pytest.mark.parametrize(
    ("name", "content"),
    [("photo.tflite", b"\xff\xd8\xff\xe0 a jpeg"), ("empty.keras", b""), ("notes.pb", b"frozen graph?")],
)
def test_files_that_are_no_model_are_refused_with_what_they_are(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(StudioError, match="is not a model Retrain Studio can read"):
        model_kind(path)


def test_a_zip_that_is_no_keras_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photos.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("daisy/1.jpg", b"x")
    with pytest.raises(StudioError, match="is not a model"):
        model_kind(path)
    assert read_info(path) is None


def test_a_missing_model_says_so(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="does not exist"):
        model_kind(tmp_path / "nothing.pb")


@pytest.mark.slow
def test_every_model_a_run_writes_carries_its_labels_and_geometry(tiny_run) -> None:
    config = tiny_run.run.read_config()
    for path in (tiny_run.run.model_path, tiny_run.run.tflite_path):
        info = read_info(path)
        assert info is not None, path
        assert info["labels"] == LABELS
        assert info["input_size"] == SIZE
        assert info["crop_fraction"] == config["crop_fraction"]
        assert info["resample"] == config["resample"]
        assert info["run_id"] == tiny_run.run.run_id


@pytest.mark.slow
def test_metadata_leaves_the_tflite_model_answering_the_same(tiny_run, tmp_path: Path) -> None:
    original = tiny_run.run.tflite_path.read_bytes()
    relabelled = tmp_path / "relabelled.tflite"
    relabelled.write_bytes(tflite_with_info(original, info_for(["x", "y", "z"], {"input_size": SIZE})))
    batch = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        LiteModel(tiny_run.run.tflite_path)(batch), LiteModel(relabelled)(batch)
    )
    assert read_info(relabelled)["labels"] == ["x", "y", "z"]  # the newer entry replaced the older


@pytest.mark.slow
def test_a_renamed_model_far_from_its_run_predicts_without_labels(tiny_run, tmp_path: Path) -> None:
    alone = tmp_path / "elsewhere" / "retrained_graph.pb"
    alone.parent.mkdir()
    shutil.copyfile(tiny_run.run.model_path, alone)
    photo = next((tiny_run.data_dir / "red").iterdir())
    from_file = Predictor.from_files(alone).predict(photo)
    from_run = Predictor.from_run(tiny_run.run.path, prefer="tensorflow").predict(photo)
    assert [label for label, _ in from_file.top_k] == [label for label, _ in from_run.top_k]
    np.testing.assert_allclose(from_file.probabilities, from_run.probabilities, atol=1e-5)
