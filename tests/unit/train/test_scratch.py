"""The from-scratch baseline: small_cnn registered, trained end to end, a leaderboard candidate.

The slow tests train the real network on a few tiny photos for a few epochs:
one CLI run whose folder is checked as every run's is (Predict, Runs,
TensorBoard and label_image read it unchanged), and whose TensorBoard logs
`inspect-logs` lists as `tensorboard --inspect` does; one sweep of it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.models.networks import build_imagenet_classifier
from engine.models.registry import get_backbone
from engine.train.candidates import (
    FROM_SCRATCH,
    SCRATCH_RECIPE,
    ScratchCandidate,
    candidates_for,
    known_candidates,
)
from engine.train.sweep_config import SweepConfig
from tests.support.cli import run_engine
from tests.support.factories import FIXTURES, write_class_folders

CLASSES = {"red": 8, "green": 8, "blue": 8}


@pytest.fixture(scope="module")
def small_cnn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One real small_cnn training from the CLI: 3 classes of 8 photos, 4 epochs."""
    root = tmp_path_factory.mktemp("scratch")
    photos = write_class_folders(root / "photos", CLASSES)
    out = run_engine(
        "retrain", "--image_dir", str(photos), "--architecture", "small_cnn", "--epochs", "4",
        "--train_batch_size", "8", "--learning_rate", "0.003", "--seed", "3",
        "--validation_percentage", "25", "--testing_percentage", "25",
        home=root / "home",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    folder = Path(re.search(r"Run folder: (.+)", out.stdout).group(1).strip())
    return folder, out


# ---------------------------------------------------------------- registry and candidates


def test_small_cnn_is_registered_as_trained_from_scratch_and_always_available() -> None:
    backbone = get_backbone("small_cnn")
    assert not backbone.pretrained and backbone.weights_available()
    assert backbone.input_sizes == (64, 96) and backbone.feature_size == 32
    assert "trained from scratch" in backbone.weights_hint()
    with pytest.raises(StudioError, match="small_cnn has no ImageNet classifier"):
        build_imagenet_classifier("small_cnn", weights=None)


def test_the_backbones_command_shows_small_cnn_as_trained_from_scratch() -> None:
    out = run_engine("backbones")
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("small_cnn"))
    assert "trained from scratch" in row and "64/96" in row and "download" not in row


def test_asking_small_cnn_for_its_imagenet_answer_is_one_error_line() -> None:
    out = run_engine("imagenet", "--image", str(FIXTURES / "flower.jpg"), "--architecture", "small_cnn")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "error: small_cnn has no ImageNet classifier (it is trained from scratch); "
        "choose a pretrained architecture such as efficientnet_lite0"
    )


def test_the_sweep_offers_small_cnn_once_labelled_from_scratch() -> None:
    assert known_candidates().count("small_cnn") == 1
    default = candidates_for(SweepConfig())
    scratch = [c for c in default if c.architecture == "small_cnn"]
    assert scratch == [ScratchCandidate(64), ScratchCandidate(96)]  # every size, as a backbone's
    assert {c.kind for c in scratch} == {FROM_SCRATCH} and scratch[0].unavailable() is None
    assert all(c.kind == "transfer learning" for c in default if c.architecture != "small_cnn")
    own_size = candidates_for(SweepConfig(architectures="small_cnn", sizes="default"))
    assert [c.name for c in own_size] == ["small_cnn@64"]


def test_the_scratch_candidate_becomes_the_same_training_as_a_full_run() -> None:
    config = SweepConfig(image_dir="/photos", validation_percentage=15, testing_percentage=5, seed=9)
    run = ScratchCandidate(96).full_run(config)
    assert (run.architecture, run.image_size, run.seed, run.export) == ("small_cnn", 96, 9, True)
    assert (run.validation_percentage, run.testing_percentage) == (15, 5)
    assert (run.epochs, run.train_batch_size, run.learning_rate) == (
        SCRATCH_RECIPE["epochs"], SCRATCH_RECIPE["train_batch_size"], SCRATCH_RECIPE["learning_rate"]
    )  # fmt: skip
    run.validate()


# ---------------------------------------------------------------- a real run


@pytest.mark.slow
def test_a_small_cnn_run_writes_the_same_run_folder_as_any_training(small_cnn_run) -> None:
    from engine.serve.inference import Predictor
    from engine.serve.model_info import read_info

    folder, out = small_cnn_run
    for name in ("config.json", "events.jsonl", "status.json", "model.keras", "labels.txt",
                 "report.json", "MODEL_CARD.md", "export/model.tflite"):  # fmt: skip
        assert (folder / name).is_file(), name
    assert (folder / "tb").is_dir()
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "done" and status["architecture"] == "small_cnn"

    # retrain.py's lines, one step per batch: 12 training photos / 8 = 2 steps an epoch, 4 epochs
    assert "Step 8: Train accuracy = " in out.stdout and "Step 8: Validation accuracy = " in out.stdout
    assert re.search(r"^Final test accuracy = \d+\.\d% \(N=6\)$", out.stdout, re.MULTILINE)
    steps = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    steps = [e for e in steps if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 9)) and steps[-1]["total_steps"] == 8
    assert sum("validation_accuracy" in e for e in steps) == 4  # once an epoch
    assert all(e["learning_rate"] == pytest.approx(0.003) for e in steps)

    report = json.loads((folder / "report.json").read_text())
    assert report["architecture"] == "small_cnn" and report["count"] == 6
    assert report["head_fit"]["method"] == "scratch" and report["head_fit"]["epochs"] == 4
    assert report["head_fit"]["augmentation"]
    config = json.loads((folder / "config.json").read_text())
    assert config["input_size"] == 64 and config["backbone"]["pretrained"] is False
    assert "every layer trained with the head" in (folder / "MODEL_CARD.md").read_text()

    # the model carries its labels and geometry; the TFLite model predicts like any run's
    labels = sorted(CLASSES)
    assert (folder / "labels.txt").read_text().split() == labels
    for model in (folder / "model.keras", folder / "export" / "model.tflite"):
        info = read_info(model)
        assert info["labels"] == labels and info["input_size"] == 64, model
    photo = next((folder.parent.parent.parent / "photos" / "red").iterdir())
    answer = run_engine("label_image", "--graph", str(folder), "--image", str(photo))
    assert answer.returncode == 0, answer.stderr
    assert {line.split()[0] for line in answer.stdout.splitlines()[2:]} == set(labels)
    prediction = Predictor.from_run(folder).predict(photo.read_bytes())
    assert sorted(label for label, _ in prediction.top_k) == labels


@pytest.mark.slow
def test_inspect_logs_lists_the_tags_tensorboard_inspect_lists(small_cnn_run) -> None:
    folder, _ = small_cnn_run
    ours = run_engine("inspect-logs", "--logdir", str(folder / "tb"))
    assert ours.returncode == 0, ours.stderr
    listed: dict[str, dict[str, str]] = {}  # run -> tag -> kind
    run = None
    for line in ours.stdout.splitlines():
        if line.startswith("run: "):
            run = line[5:].strip()
            listed[run] = {}
        elif run is not None and line.strip():
            kind, tag = line.split()[:2]
            listed[run][tag] = kind

    # the Keras TensorBoard callback's logs: every layer's histograms, the graph, the learning rate
    train = listed["train"]
    for layer in ("conv1", "conv2", "final_result"):
        for weight in ("kernel", "bias"):
            assert train[f"{layer}/{weight}/histogram"] == "histogram", (layer, weight)
    assert train["keras"] == train["forward_pass"] == "graph"  # the Keras graph and the op graph
    assert train["epoch_learning_rate"] == train["epoch_accuracy"] == "scalar"
    assert listed["validation"]["epoch_accuracy"] == "scalar"

    # the same tags, run by run, as TensorBoard's own `--inspect` (TF2 writes them all as tensors)
    tensorboard = Path(sys.executable).with_name("tensorboard")
    theirs = subprocess.run(
        [str(tensorboard), "--inspect", "--logdir", str(folder / "tb")],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    found: dict[str, set[str]] = {}
    section = None
    for line in theirs.stdout.splitlines():
        if line.startswith("These tags are in "):
            path = Path(line.removeprefix("These tags are in ").rstrip(":"))
            section = found.setdefault(str(path.relative_to(folder / "tb")), set())
        elif line.startswith("====="):
            section = None
        elif section is not None and line.startswith("   "):
            section.add(line.strip())
    assert found == {name: set(tags) for name, tags in listed.items()}


@pytest.mark.slow
def test_cancelling_a_small_cnn_run_stops_after_the_batch_and_keeps_the_model_so_far(tmp_path) -> None:
    from engine.core.rundir import RunDir
    from engine.serve.model_info import read_info
    from engine.train.config import TrainConfig
    from engine.train.retrain import retrain

    photos = write_class_folders(tmp_path / "photos", CLASSES)
    run = RunDir.create(tmp_path / "runs", backbone="small_cnn")
    config = TrainConfig(
        image_dir=str(photos), architecture="small_cnn", epochs=50, train_batch_size=4, seed=2,
        validation_percentage=25, testing_percentage=25,
    )  # fmt: skip

    def on_event(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 5:
            run.request_cancel()

    result = retrain(config, run, on_event=on_event)
    assert result == {"cancelled": True, "step": 5}  # 50 epochs of 3 steps asked for
    assert run.read_status()["state"] == "cancelled"
    assert read_info(run.model_path)["labels"] == sorted(CLASSES)
    assert (run.path / "labels.txt").is_file()


@pytest.mark.slow
def test_the_sweep_scores_small_cnn_as_the_from_scratch_row(tmp_path: Path, monkeypatch) -> None:
    from engine.core.rundir import RunDir
    from engine.train import candidates as candidates_module
    from engine.train.sweep import run_sweep

    monkeypatch.setitem(candidates_module.SCRATCH_RECIPE, "epochs", 3.0)  # the recipe's 60: a minute
    photos = write_class_folders(tmp_path / "photos", CLASSES)
    config = SweepConfig(
        image_dir=str(photos), architectures="small_cnn", sizes="default", seed=4,
        validation_percentage=25, testing_percentage=25,
    )  # fmt: skip
    run, lines = RunDir.create(tmp_path / "runs", backbone="sweep"), []
    board = run_sweep(config, run, echo=lines.append)
    assert "Candidate 1 of 1: small_cnn@64 (from scratch)" in lines
    assert any(line.startswith("small_cnn@64: test accuracy = ") for line in lines)
    (row,) = board["rows"]
    assert (row["candidate"], row["kind"], row["error"]) == ("small_cnn@64", "from scratch", None)
    assert row["test_count"] == 6 and 0.0 <= row["test_accuracy"] <= 1.0
    assert row["size_bytes"] > 0 and row["latency_ms"] > 0
    assert row["int8_size_bytes"] is None  # int8 is measured when a candidate is made a full run
    assert row["details"]["epochs"] == 3 and row["details"]["steps"] == 3 * 1  # 12 photos, batch 32
    assert row["full_run"]["architecture"] == "small_cnn" and row["full_run"]["epochs"] == 3.0
    assert not (run.path / "candidates").exists()
