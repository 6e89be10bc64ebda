"""`python -m engine retrain` and `label_image`: retrain.py's flags and output, clear errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.runs import RunDir

from .conftest import REPO_ROOT, run_engine
from .factories import image_bytes, make_image, write_class_folders

TINY_FLAGS = [
    "--architecture", "efficientnet_lite0",
    "--image_size", "128",
    "--how_many_training_steps", "20",
    "--train_batch_size", "16",
    "--testing_percentage", "20",
    "--validation_percentage", "20",
    "--seed", "3",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cli")
    data = write_class_folders(tmp / "data", {"red": 8, "green": 8, "blue": 8})
    out = run_engine(
        "retrain", "--image_dir", str(data), "--runs_dir", str(tmp / "runs"),
        "--bottleneck_dir", str(tmp / "bn"), "--output_graph", str(tmp / "copy" / "graph.keras"),
        "--output_labels", str(tmp / "copy" / "labels.txt"), "--summaries_dir", str(tmp / "summaries"),
        "--print_misclassified_test_images", *TINY_FLAGS,
    )  # fmt: skip
    runs = sorted((tmp / "runs").iterdir())
    return {"out": out, "tmp": tmp, "data": data, "run": RunDir(runs[-1]) if runs else None}


@pytest.mark.slow
def test_retrain_prints_steps_and_ends_with_final_accuracy(trained) -> None:
    out = trained["out"]
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert "Step 10: Train accuracy = " in out.stdout
    assert "Step 10: Cross entropy = " in out.stdout
    assert "Step 20: Validation accuracy = " in out.stdout
    assert lines[-1].startswith("Final test accuracy = ") and lines[-1].endswith("(N=8)")
    assert "=== MISCLASSIFIED TEST IMAGES" in out.stdout


@pytest.mark.slow
def test_retrain_draws_a_bottleneck_progress_bar_on_stderr(trained) -> None:
    assert "bottlenecks [" in trained["out"].stderr
    assert "24/24 images" in trained["out"].stderr


@pytest.mark.slow
def test_retrain_writes_copies_where_asked(trained) -> None:
    tmp, run = trained["tmp"], trained["run"]
    assert (tmp / "copy" / "graph.keras").read_bytes() == run.model_path.read_bytes()
    assert (tmp / "copy" / "labels.txt").read_text() == "blue\ngreen\nred\n"
    assert list((tmp / "summaries" / run.run_id).glob("train/events.out.tfevents.*"))


@pytest.mark.slow
def test_retrain_into_a_given_run_dir_records_its_pid(trained, tmp_path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    out = run_engine(
        "retrain", "--run_dir", str(run.path), "--image_dir", str(trained["data"]),
        "--bottleneck_dir", str(trained["tmp"] / "bn"), *TINY_FLAGS,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    status = run.read_status()
    assert status["state"] == "done" and isinstance(status["pid"], int)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run.run_id]


@pytest.mark.slow
def test_label_image_prints_time_then_labels_best_first(trained) -> None:
    image = trained["data"] / "red" / "red_000.jpg"
    out = run_engine(
        "label_image", "--graph", str(trained["run"].path), "--image", str(image), "--top_k", "3"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("Evaluation time (1-image): ") and lines[0].endswith("s")
    pairs = [line.rsplit(" ", 1) for line in lines[1:]]
    assert sorted(label for label, _ in pairs) == ["blue", "green", "red"]
    probabilities = [float(p) for _, p in pairs]
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.slow
def test_label_image_with_graph_and_labels_files(trained) -> None:
    run = trained["run"]
    image = trained["data"] / "green" / "green_001.jpg"
    out = run_engine(
        "label_image", "--graph", str(run.model_path), "--labels", str(run.labels_path),
        "--image", str(image), "--top_k", "1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip().splitlines()) == 2


@pytest.mark.slow
def test_label_image_folder_gives_csv_and_lists_a_bad_file(trained, tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(image_bytes(make_image(0, 50)))
    (folder / "b.jpg").write_bytes(image_bytes(make_image(2, 51)))
    (folder / "c.jpg").write_bytes(b"not an image")
    out = run_engine("label_image", "--graph", str(trained["run"].path), "--image", str(folder))
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [Path(r["source"]).name for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [bool(r["error"]) for r in rows] == [False, False, True]
    assert out.returncode == 1


@pytest.mark.slow
def test_label_image_on_a_non_image_is_one_line_exit_2(trained, tmp_path) -> None:
    bad = tmp_path / "x.jpg"
    bad.write_text("text")
    out = run_engine("label_image", "--graph", str(trained["run"].path), "--image", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        ("two_classes", ["--architecture", "no_such_net"], "no_such_net"),
        ("nothing", [], "is not a folder"),
        ("one_class", [], "class"),
        ("two_classes", ["--how_many_training_steps", "0"], "--how_many_training_steps"),
    ],
)
def test_bad_input_is_one_line_error_exit_2(tmp_path, make: str, flags: list[str], message: str) -> None:
    data = tmp_path / "data"
    if make == "two_classes":
        write_class_folders(data, {"a": 3, "b": 3})
    elif make == "one_class":
        write_class_folders(data, {"only": 5})
    out = run_engine(
        "retrain", "--image_dir", str(data), "--runs_dir", str(tmp_path / "runs"), *flags,
        home=tmp_path / "home",
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    error_lines = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert "Traceback" not in out.stderr


def test_cli_flags_map_to_train_config() -> None:
    from engine.cli import build_parser
    from engine.commands.retrain import config_from_args

    args = build_parser().parse_args(
        ["retrain", "--learning_rate", "0.5", "--flip_left_right", "--random_crop", "10",
         "--test_batch_size", "-1", "--lr_schedule", "cosine", "--class_weights", "balanced"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.learning_rate, config.flip_left_right, config.random_crop) == (0.5, True, 10)
    assert (config.lr_schedule, config.class_weights, config.weights) == (
        "cosine",
        "balanced",
        "imagenet",
    )
    assert json.loads(json.dumps(config.as_dict()))["how_many_training_steps"] == 4000


def wait_for(condition, timeout_s: float = 180.0, what: str = "condition") -> None:
    """Poll `condition` until it is true or the deadline passes."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_sigterm_cancels_between_steps_and_keeps_the_run(trained, tmp_path) -> None:
    import signal

    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("--how_many_training_steps") + 1] = "100000"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "retrain", "--run_dir", str(run.path),
         "--image_dir", str(trained["data"]), "--bottleneck_dir", str(trained["tmp"] / "bn"), *flags],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: '"step": 20,' in (run.events_path.read_text() if run.events_path.exists() else ""),
                 what="step 20")  # fmt: skip
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 3
    finally:
        if process.poll() is None:
            process.kill()
    status = run.read_status()
    assert status["state"] == "cancelled" and status["step"] >= 20
    assert run.model_path.is_file() and run.labels_path.is_file()


def test_bad_flag_with_run_dir_marks_that_run_failed(tmp_path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    out = run_engine(
        "retrain", "--run_dir", str(run.path), "--architecture", "no_such_net", home=tmp_path
    )
    assert out.returncode == 2
    status = run.read_status()
    assert status["state"] == "failed" and "no_such_net" in status["error"]
