"""The unknown answer on the session's tiny trained run: Predictor, batch CSV, label_image, off switch.

The tiny run (three colour classes) calibrates its rules like any run; noise photos
are nothing like its plain colour photos, so its rule rejects them, while its own
photos are kept. An old run (a hand-made model without rules) behaves as before.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.serve.inference import Predictor
from engine.serve.model_info import read_info
from tests.support.cli import run_engine
from tests.support.tiny_model import LABELS, TinyRun, write_colour_run


def _noise(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def noise(tmp_path: Path) -> list[Path]:
    return [_noise(tmp_path / f"noise_{i}.png", i) for i in range(3)]


def _own_photos(tiny_run: TinyRun) -> list[Path]:
    return sorted(tiny_run.data_dir.rglob("*.jpg"))


@pytest.mark.slow
def test_the_run_records_its_rule_threshold_and_rates(tiny_run: TinyRun) -> None:
    report = json.loads((tiny_run.run.path / "report.json").read_text())
    unknown = report["unknown"]
    assert unknown["rule"] == "cosine_or_max_probability"
    assert unknown["false_rejection"] == 0.05
    assert unknown["validation_false_rejection"] <= 0.05
    assert unknown["test_count"] == report["count"]
    assert {c["kind"] for c in unknown["candidates"]} >= {"cosine", "max_probability", "energy"}
    stored = json.loads((tiny_run.run.path / "unknown.json").read_text())
    assert stored["rule"]["threshold"] == pytest.approx(unknown["threshold"], abs=1e-6)


@pytest.mark.slow
def test_noise_is_unknown_and_the_run_s_own_photos_are_not(tiny_run: TinyRun, noise) -> None:
    predictor = Predictor.from_run(tiny_run.run.path)
    assert predictor.rule is not None and predictor.rule.needs_features  # the assembled model
    for path in noise:
        prediction = predictor.predict(str(path), top_k=3)
        assert prediction.unknown and prediction.unknown_score > predictor.rule.threshold
        assert sorted(label for label, _ in prediction.top_k) == LABELS  # the nearest still given
    kept = [not predictor.predict(str(p)).unknown for p in _own_photos(tiny_run)]
    assert sum(kept) >= 0.8 * len(kept)


@pytest.mark.slow
def test_the_model_file_alone_carries_the_rule(tiny_run: TinyRun, noise, tmp_path: Path) -> None:
    alone = tmp_path / "renamed.bin"
    shutil.copyfile(tiny_run.run.tflite_path, alone)
    assert read_info(alone)["unknown"]["rule"]["kind"] == "cosine_or_max_probability"
    predictor = Predictor.from_files(alone)
    assert predictor.rule is not None and predictor.predict(str(noise[0])).unknown


@pytest.mark.slow
def test_turned_off_it_always_names_a_class(tiny_run: TinyRun, noise) -> None:
    predictor = Predictor.from_run(tiny_run.run.path, unknown=False)
    prediction = predictor.predict(str(noise[0]))
    assert (predictor.rule, prediction.unknown, prediction.unknown_score) == (None, False, None)


@pytest.mark.slow
def test_batch_table_has_unknown_columns(tiny_run: TinyRun, noise) -> None:
    predictor = Predictor.from_run(tiny_run.run.path)
    own = _own_photos(tiny_run)[0]
    table = predictor.predict_many([str(noise[0]), str(own), str(noise[0].parent / "missing.png")])
    assert list(table.columns)[-2:] == ["unknown", "unknown_score"]
    assert table["unknown"].tolist()[:2] == [True, False]
    assert table["unknown_score"].iloc[0] > table["unknown_score"].iloc[1]
    assert table["label"].iloc[0] in LABELS  # the nearest class stays in the label column


@pytest.mark.slow
def test_label_image_says_unknown_first_and_keeps_retrain_py_lines(tiny_run: TinyRun, noise) -> None:
    graph = str(tiny_run.run.path)
    out = run_engine("label_image", "--graph", graph, "--image", str(noise[0]), "--top_k", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    label, score = lines[0].split(" ")
    assert label == "unknown" and float(score) > 0
    assert lines[1].startswith("Evaluation time (1-image): ") and lines[2] == ""
    assert sorted(line.rsplit(" ", 1)[0] for line in lines[3:]) == LABELS

    off = run_engine("label_image", "--graph", graph, "--image", str(noise[0]), "--no_unknown")
    assert off.stdout.splitlines()[0].startswith("Evaluation time")

    own = run_engine("label_image", "--graph", graph, "--image", str(_own_photos(tiny_run)[0]))
    assert own.stdout.splitlines()[0].startswith("Evaluation time")

    folder = run_engine("label_image", "--graph", graph, "--image", str(noise[0].parent))
    rows = list(csv.DictReader(io.StringIO(folder.stdout)))
    assert {row["unknown"] for row in rows} == {"True"}


def test_an_old_run_without_a_rule_behaves_as_before(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    run_dir = write_colour_run(tmp_path / "run", ["red", "green", "blue"], 32)
    predictor = Predictor.from_run(run_dir)
    photo = _noise(tmp_path / "noise.png", 0)
    prediction = predictor.predict(str(photo))
    assert (predictor.rule, prediction.unknown, prediction.unknown_score) == (None, False, None)
    row = predictor.predict_many([str(photo)]).iloc[0]
    assert row["unknown"] is None and row["unknown_score"] is None
