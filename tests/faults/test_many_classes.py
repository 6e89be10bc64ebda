"""Many classes (issue 10, item 4): 600 classes train to a report, with no giant image anywhere.

600 classes used to crash after all the work, drawing a 28,920-pixel confusion
matrix (`EncodePng: image cannot have >= int32 max elements`). A tiny
random-weight backbone keeps this quick; the 1,000-class memory figure is
bench/bench_many_classes.py's (BENCHMARKS.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.rundir import RunDir
from engine.train.config import TrainConfig
from engine.train.evaluation import CONFUSION_IMAGE_MAX_CLASSES, TOP_CONFUSIONS
from engine.train.retrain import retrain
from tests.support.event_logs import tensor_tags
from tests.support.factories import write_class_folders

CLASSES = 600


@pytest.mark.slow
def test_six_hundred_classes_train_to_a_report_without_drawing_the_matrix(tmp_path: Path) -> None:
    data = write_class_folders(
        tmp_path / "data", {f"c{i:03d}": 4 for i in range(CLASSES)}, size=(32, 32)
    )
    run = RunDir.create(tmp_path / "runs", backbone="mobilenet_0.25_128")
    config = TrainConfig(
        image_dir=str(data),
        architecture="mobilenet_0.25_128",
        weights=None,
        how_many_training_steps=5,
        eval_step_interval=5,
        testing_percentage=25,
        validation_percentage=25,
        seed=3,
    )
    report = retrain(config, run)
    assert run.read_status()["state"] == "done"
    saved = run.read_report()
    assert len(saved["confusion_matrix"]) == CLASSES == len(saved["labels"])
    assert sum(map(sum, saved["confusion_matrix"])) == saved["count"] == report["count"]
    assert 0 < len(saved["top_confusions"]) <= TOP_CONFUSIONS
    assert CLASSES > CONFUSION_IMAGE_MAX_CLASSES
    validation = tensor_tags(run.tb_dir / "validation")
    assert "test_top_confusions" in validation and "test_confusion_matrix" not in validation
    assert run.tflite_path.is_file()
