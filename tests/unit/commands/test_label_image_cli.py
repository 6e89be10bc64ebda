"""`python -m engine label_image`: label_image.py's output on the session's tiny trained run."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.support.cli import run_engine
from tests.support.factories import image_bytes, make_image
from tests.support.tiny_model import LABELS, TinyRun


@pytest.mark.slow
def test_label_image_prints_time_a_blank_line_then_labels_best_first(tiny_run: TinyRun) -> None:
    image = tiny_run.data_dir / "red" / "red_000.jpg"
    out = run_engine(
        "label_image", "--graph", str(tiny_run.run.path), "--image", str(image), "--top_k", "3"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("Evaluation time (1-image): ") and lines[0].endswith("s")
    assert lines[1] == ""  # label_image.py's layout
    pairs = [line.rsplit(" ", 1) for line in lines[2:]]
    assert sorted(label for label, _ in pairs) == LABELS
    probabilities = [float(p) for _, p in pairs]
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.slow
def test_label_image_with_graph_and_labels_files(tiny_run: TinyRun) -> None:
    run = tiny_run.run
    image = tiny_run.data_dir / "green" / "green_001.jpg"
    out = run_engine(
        "label_image", "--graph", str(run.model_path), "--labels", str(run.labels_path),
        "--image", str(image), "--top_k", "1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[2].startswith("green ")


@pytest.mark.slow
def test_label_image_takes_label_image_py_flags_with_a_note(tiny_run: TinyRun) -> None:
    image = tiny_run.data_dir / "blue" / "blue_002.jpg"
    out = run_engine(
        "label_image", "--graph", str(tiny_run.run.tflite_path), "--image", str(image),
        "--input_height", "299", "--input_width", "299", "--input_mean", "128", "--input_std", "128",
        "--input_layer", "Mul", "--output_layer", "final_result",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "note: --input_mean is not needed" in out.stderr
    assert out.stdout.strip().splitlines()[2].split()[0] in LABELS


@pytest.mark.slow
def test_label_image_folder_gives_csv_and_lists_a_bad_file(tiny_run: TinyRun, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(image_bytes(make_image(0, 50)))
    (folder / "b.jpg").write_bytes(image_bytes(make_image(2, 51)))
    (folder / "c.jpg").write_bytes(b"not an image")
    out = run_engine("label_image", "--graph", str(tiny_run.run.path), "--image", str(folder))
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [Path(r["source"]).name for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [bool(r["error"]) for r in rows] == [False, False, True]
    assert out.returncode == 1


@pytest.mark.slow
def test_label_image_on_a_non_image_is_one_line_exit_2(tiny_run: TinyRun, tmp_path: Path) -> None:
    bad = tmp_path / "x.jpg"
    bad.write_text("text")
    out = run_engine("label_image", "--graph", str(tiny_run.run.path), "--image", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in out.stderr
