"""engine.train.retrain: retrain.py's loop, step events, run files, TensorBoard, cancel, crash.

Most tests read the session's one tiny trained run (the `tiny_run` fixture);
the ones that need another outcome (cancelled, crashed, augmented, fine-tuned,
a rerun) train into a run folder of their own with the same tiny settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.core.rundir import RunDir
from engine.models.networks import build_feature_extractor
from engine.train.config import TrainConfig
from engine.train.retrain import retrain
from tests.support.tiny_model import ARCH, SIZE, TinyRun, step_metrics

STEP_FIELDS = {
    "step",
    "total_steps",
    "train_accuracy",
    "cross_entropy",
    "learning_rate",
    "images_per_s",
    "elapsed_s",
}


def read_events(run: RunDir) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.events_path.read_text().splitlines()]


# ---------------------------------------------------------------- a finished run


@pytest.mark.slow
def test_every_step_emits_an_event_with_the_metrics(tiny_run: TinyRun) -> None:
    steps = [e for e in tiny_run.events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 31))
    assert all(e.keys() >= STEP_FIELDS for e in steps)


@pytest.mark.slow
def test_validation_metrics_come_at_each_eval_interval(tiny_run: TinyRun) -> None:
    evaluated = [e["step"] for e in tiny_run.events if "validation_accuracy" in e]
    assert evaluated == [1, 10, 20, 30]
    assert all("validation_cross_entropy" in e for e in tiny_run.events if "validation_accuracy" in e)


@pytest.mark.slow
def test_events_file_holds_what_the_callback_saw(tiny_run: TinyRun) -> None:
    assert read_events(tiny_run.run) == tiny_run.events


@pytest.mark.slow
def test_events_show_phases_bottleneck_progress_and_result(tiny_run: TinyRun) -> None:
    events = tiny_run.events
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["scan", "bottlenecks", "train", "evaluate", "done", "export"]
    assert any(e["event"] == "progress" and e["phase"] == "bottlenecks" for e in events)
    result = [e for e in events if e["event"] == "result"]
    assert result == [
        {
            "event": "result",
            "test_accuracy": tiny_run.report["accuracy"],
            "test_count": tiny_run.report["count"],
            "time": result[0]["time"],
        }
    ]


@pytest.mark.slow
def test_training_learns_the_tiny_classes(tiny_run: TinyRun) -> None:
    steps = [e for e in tiny_run.events if e["event"] == "step"]
    assert steps[-1]["cross_entropy"] < steps[0]["cross_entropy"] / 2
    assert tiny_run.report["accuracy"] >= 0.8


@pytest.mark.slow
def test_stdout_lines_follow_retrain_py(tiny_run: TinyRun) -> None:
    lines = tiny_run.lines
    assert any(line.startswith("Step 10: Train accuracy = ") and line.endswith("%") for line in lines)
    assert any(line.startswith("Step 10: Cross entropy = ") for line in lines)
    assert "Step 10: Validation accuracy = " in "\n".join(lines)
    count = tiny_run.report["count"]
    final = f"Final test accuracy = {tiny_run.report['accuracy'] * 100:.1f}% (N={count})"
    # the exports come after the run is done: their figures follow retrain.py's last line
    after = lines[lines.index(final) + 1 :]
    assert after and all(line.startswith(("Exported ", "Wrote model.keras")) for line in after)


@pytest.mark.slow
def test_report_says_retrain_py_sgd_loop_fitted_the_head(tiny_run: TinyRun) -> None:
    fit = tiny_run.report["head_fit"]
    assert fit == {
        "method": "sgd", "requested": "sgd", "reason": None, "steps": 30, "learning_rate": 0.01,
        "lr_schedule": "constant", "train_batch_size": 16,
    }  # fmt: skip


@pytest.mark.slow
def test_run_folder_holds_every_artifact(tiny_run: TinyRun) -> None:
    run: RunDir = tiny_run.run
    for path in (run.config_path, run.status_path, run.model_path, run.labels_path, run.report_path,
                 run.path / "MODEL_CARD.md"):  # fmt: skip
        assert path.is_file(), path
    assert run.read_labels() == ["blue", "green", "red"]
    assert run.read_status()["state"] == "done"
    assert run.read_status()["test_accuracy"] == tiny_run.report["accuracy"]


@pytest.mark.slow
def test_config_records_settings_dataset_backbone_and_versions(tiny_run: TinyRun) -> None:
    config = tiny_run.run.read_config()
    assert config["seed"] == 7 and config["how_many_training_steps"] == 30
    assert config["dataset_fingerprint"]
    assert config["backbone"]["name"] == ARCH
    assert (config["input_size"], config["crop_fraction"]) == (SIZE, 0.875)
    assert config["runtime"] in ("litert", "tensorflow")
    assert {"tensorflow", "keras", "python", "engine"} <= config["versions"].keys()


@pytest.mark.slow
def test_report_has_per_class_metrics_and_confusion_matrix(tiny_run: TinyRun) -> None:
    report = tiny_run.run.read_report()
    assert [row["label"] for row in report["per_class"]] == ["blue", "green", "red"]
    matrix = np.asarray(report["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == report["count"]


@pytest.mark.slow
def test_saved_model_takes_uint8_and_scores_like_the_report(tiny_run: TinyRun) -> None:
    from engine.data.scan import scan_dataset
    from engine.serve.inference import Predictor

    run: RunDir = tiny_run.run
    predictor = Predictor.from_run(run.path, prefer="tensorflow")
    config = run.read_config()
    test = scan_dataset(config["image_dir"], testing_percentage=20, validation_percentage=20)
    hits = [predictor.predict(r.path).label == r.label for r in test.split("test")]
    assert np.mean(hits) == pytest.approx(tiny_run.report["accuracy"])


@pytest.mark.slow
def test_tensorboard_has_scalars_histograms_images_graph_and_hparams(tiny_run: TinyRun) -> None:
    from tests.support.event_logs import tensor_tags as tags

    tb = tiny_run.run.tb_dir
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
def test_same_seed_and_data_give_the_same_metrics(tiny_run: TinyRun, tmp_path: Path) -> None:
    again = RunDir.create(tmp_path / "runs", backbone=ARCH)
    retrain(tiny_run.config, again)
    assert step_metrics(again) == step_metrics(tiny_run.run)


@pytest.mark.slow
def test_cancel_flag_stops_between_steps_and_keeps_the_model(tiny_run: TinyRun, tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)

    def cancel_at_five(event: dict[str, Any]) -> None:
        if event.get("event") == "step" and event["step"] == 5:
            run.request_cancel()

    result = retrain(tiny_run.config, run, on_event=cancel_at_five)
    assert result == {"cancelled": True, "step": 5}
    assert run.read_status()["state"] == "cancelled"
    assert [e["step"] for e in read_events(run) if e["event"] == "step"] == [1, 2, 3, 4, 5]
    assert run.model_path.is_file() and run.labels_path.is_file()


@pytest.mark.slow
def test_crash_leaves_failed_status_traceback_and_events(tiny_run: TinyRun, tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)

    def explode(event: dict[str, Any]) -> None:
        if event.get("event") == "step" and event["step"] == 3:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        retrain(tiny_run.config, run, on_event=explode)
    status = run.read_status()
    assert status["state"] == "failed"
    assert "disk on fire" in status["error"]
    assert "RuntimeError: disk on fire" in run.log_path.read_text()
    assert [e["step"] for e in read_events(run) if e["event"] == "step"] == [1, 2, 3]


@pytest.mark.slow
def test_warm_rerun_computes_no_bottlenecks(tiny_run: TinyRun, tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    # the shared run's bottleneck cache is warm: every image is found there
    retrain(tiny_run.config.replace(how_many_training_steps=2), run)
    assert run.read_status()["bottlenecks"]["computed"] == 0
    assert run.read_status()["bottlenecks"]["cached"] == 24


@pytest.mark.slow
def test_augmentation_trains_on_fresh_features_and_skips_the_cache(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    config = tiny_run.config.replace(
        bottleneck_dir=str(tmp_path / "bottlenecks"),  # a cold cache: what is computed is counted
        how_many_training_steps=3, flip_left_right=True, random_brightness=20, train_batch_size=4,
    )  # fmt: skip
    report = retrain(config, run)
    assert report["steps"] == 3
    # only validation + test images went through the cache; training images are distorted per step
    assert run.read_status()["bottlenecks"]["computed"] == 24


@pytest.mark.slow
def test_fine_tuning_changes_the_backbone_weights(tiny_run: TinyRun, tmp_path: Path) -> None:
    import keras

    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    config = tiny_run.config.replace(
        how_many_training_steps=2, fine_tune_blocks=1, train_batch_size=4, fine_tune_learning_rate=0.05
    )
    retrain(config, run)
    trained = keras.saving.load_model(run.model_path, compile=False)
    fresh = build_feature_extractor(ARCH, input_size=SIZE)
    images = np.random.default_rng(0).integers(0, 255, (2, SIZE, SIZE, 3), dtype=np.uint8)
    inner = trained.layers[1]
    assert not np.allclose(inner(images).numpy(), fresh(images).numpy(), atol=1e-5)


@pytest.mark.slow
def test_retrain_leaves_the_callers_config_unchanged(tiny_run: TinyRun, tmp_path: Path) -> None:
    # architecture and seed left to the run: retrain resolves them into config.json, not into this object
    config = TrainConfig(
        image_dir=str(tiny_run.data_dir), image_size=SIZE, how_many_training_steps=2,
        train_batch_size=8, testing_percentage=20, validation_percentage=20, weights=None,
    )  # fmt: skip
    before = config.as_dict()
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    retrain(config, run)
    assert config.as_dict() == before
    assert (config.architecture, config.seed) == (None, None)
    recorded = run.read_config()
    assert recorded["architecture"] == ARCH and isinstance(recorded["seed"], int)
    resolved = config.replace(architecture=ARCH, seed=recorded["seed"]).as_dict()
    # config.json holds the resolved settings ("runtime" there is the one actually used)
    assert {k: recorded[k] for k in resolved if k != "runtime"} == {
        k: v for k, v in resolved.items() if k != "runtime"
    }


@pytest.mark.slow
def test_default_settings_reach_95_percent_on_the_demo_dataset(tmp_path: Path) -> None:
    from engine.data.demo import ensure_demo_dataset

    root = ensure_demo_dataset(tmp_path / "demo")
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    report = retrain(TrainConfig(image_dir=str(root), seed=1), run)
    # the default head fit: L-BFGS to convergence, a step per iteration
    fit = report["head_fit"]
    assert (fit["method"], fit["converged"], fit["chosen_on"]) == ("lbfgs", True, "validation")
    assert report["steps"] == fit["iterations"] < 4000
    assert report["accuracy"] >= 0.95
