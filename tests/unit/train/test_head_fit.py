"""engine.train.head_fit: which fit a run gets, and the L-BFGS loop speaking the step loop's language.

The loop runs on synthetic features (no backbone), with real TensorBoard
writers, so its events, lines, scalars and layer are what a run would get; it
needs no TensorFlow at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.train.config import TrainConfig
from engine.train.events import RunCancelled
from engine.train.head_fit import LbfgsLoop, head_fit_used, sgd_summary
from engine.train.loop import TrainingData
from engine.train.model_card import describe_fit
from engine.train.softmax import L2_GRID, choose_l2
from engine.train.summaries import Summaries
from tests.support.features import blobs

CLASSES = 3


def _data(features: int = 16) -> TrainingData:
    x, y = blobs(300, dims=features, classes=CLASSES, seed=11)
    parts = {"train": slice(0, 200), "validation": slice(200, 250), "test": slice(250, 300)}
    return TrainingData(
        splits={name: [None] * (s.stop - s.start) for name, s in parts.items()},
        truth={name: y[s] for name, s in parts.items()},
        features={name: x[s] for name, s in parts.items()},
    )


def _loop(data: TrainingData, config: TrainConfig, **kwargs: Any) -> tuple[LbfgsLoop, dict[str, list]]:
    seen: dict[str, list] = {"events": [], "lines": [], "progress": []}
    loop = LbfgsLoop(
        config, CLASSES, data,
        should_stop=kwargs.get("should_stop", lambda: False), on_step=seen["events"].append,
        echo=seen["lines"].append, progress=seen["progress"].append,
    )  # fmt: skip
    return loop, seen


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tb = tmp_path_factory.mktemp("tb")
    data = _data()
    loop, seen = _loop(data, TrainConfig(eval_step_interval=5, seed=1))
    summaries = Summaries(tb, ["a", "b", "c"])
    loop.train(summaries)
    summaries.close()
    return {"loop": loop, "data": data, "tb": tb, **seen}


def test_every_iteration_is_a_step_event_and_the_last_one_ends_the_run(fitted) -> None:
    steps = fitted["events"]
    assert [e["step"] for e in steps] == list(range(1, len(steps) + 1))
    assert fitted["loop"].steps == len(steps) == fitted["loop"].summary["iterations"]
    assert steps[-1]["total_steps"] == len(steps)
    assert steps[-1]["cross_entropy"] < steps[0]["cross_entropy"]
    evaluated = [e["step"] for e in steps if "validation_accuracy" in e]
    assert evaluated == sorted({1, *range(5, len(steps) + 1, 5), len(steps)})
    assert all(e["validation_count"] == 50 for e in steps if "validation_accuracy" in e)


def test_it_prints_the_l2_grid_then_retrain_py_step_lines(fitted) -> None:
    lines = fitted["lines"]
    assert lines[0].startswith("Head fit: L-BFGS on 200 cached feature vectors")
    assert sum(line.startswith("L2 = ") for line in lines) == len(L2_GRID)
    chosen = fitted["loop"].summary["l2"]
    assert f"Chosen L2 = {chosen:g}" in lines
    last = fitted["events"][-1]["step"]
    assert f"Step {last}: Validation accuracy = " in "\n".join(lines)
    assert any(line.startswith("Step 5: Train accuracy = ") and line.endswith("%") for line in lines)
    assert any(line.startswith("Step 5: Cross entropy = ") for line in lines)


def test_the_head_is_the_chosen_fit_and_scores_like_it(fitted) -> None:
    data, loop = fitted["data"], fitted["loop"]
    reference, table = choose_l2(
        (data.features["train"], data.truth["train"]),
        (data.features["validation"], data.truth["validation"]),
        CLASSES,
    )
    assert loop.summary["l2"] == reference.l2
    assert loop.summary["l2_grid"] == [r.as_dict() | {"seconds": g["seconds"]} for r, g in
                                       zip(table, loop.summary["l2_grid"], strict=True)]  # fmt: skip
    np.testing.assert_allclose(loop.head.kernel, reference.kernel, atol=1e-5)
    _, truth, probabilities = loop.test_predictions()
    np.testing.assert_allclose(probabilities, reference.probabilities(data.features["test"]), atol=1e-5)
    assert truth.tolist() == data.truth["test"].tolist()


def test_progress_counts_the_fits(fitted) -> None:
    last = fitted["progress"][-1]
    assert (last.phase, last.unit, last.done, last.total) == (
        "train",
        "fits",
        len(L2_GRID) + 1,
        len(L2_GRID) + 1,
    )


def test_tensorboard_gets_the_step_loops_scalars(fitted) -> None:
    from tensorboard.backend.event_processing import event_accumulator as ea

    def tags(folder: Path) -> set[str]:
        acc = ea.EventAccumulator(str(folder), size_guidance={ea.TENSORS: 0})
        acc.Reload()
        return set(acc.Tags()["tensors"])

    tb = fitted["tb"]
    assert {"accuracy", "cross_entropy", "learning_rate", "final_result/weights"} <= tags(tb / "train")
    assert {"accuracy", "cross_entropy"} <= tags(tb / "validation")


def test_cancel_stops_the_fit_and_keeps_the_best_head_so_far(tmp_path: Path) -> None:
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 40  # a few grid fits in

    loop, seen = _loop(_data(), TrainConfig(seed=1), should_stop=stop)
    summaries = Summaries(tmp_path, ["a", "b", "c"])
    with pytest.raises(RunCancelled):
        loop.train(summaries)
    summaries.close()
    assert seen["events"] == []  # cancelled while choosing L2
    assert np.abs(loop.head.kernel).max() > 0  # not the untrained layer


@pytest.mark.parametrize(
    ("changes", "fit", "why"),
    [
        ({}, "lbfgs", None),
        ({"head_fit": "sgd"}, "sgd", None),
        ({"flip_left_right": True}, "sgd", "augmentation"),
        ({"random_crop": 10, "head_fit": "sgd"}, "sgd", None),
        ({"fine_tune_blocks": 2}, "sgd", "fine-tuning"),
    ],
)
def test_augmentation_and_fine_tuning_keep_the_sgd_loop(changes, fit, why) -> None:
    used, reason = head_fit_used(TrainConfig(**changes))
    assert used == fit
    assert (reason is None) if why is None else why in reason


def test_the_fit_is_described_in_one_sentence(fitted) -> None:
    text = describe_fit(fitted["loop"].summary)
    assert text.startswith("L-BFGS, full batch on the cached features: converged after ")
    assert "chosen on the validation split" in text
    sgd = sgd_summary(TrainConfig(flip_left_right=True), 4000, "augmentation distorts the images")
    assert describe_fit(sgd) == (
        "SGD (retrain.py's loop): 4000 steps of 100 photos at learning rate 0.01; "
        "L-BFGS was asked for, but augmentation distorts the images"
    )


def test_the_fit_and_its_logs_never_import_tensorflow(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from engine.train.config import TrainConfig\n"
        "from engine.train.summaries import Summaries\n"
        "from tests.unit.train.test_head_fit import _data, _loop\n"
        "loop, seen = _loop(_data(), TrainConfig(seed=1))\n"
        f"summaries = Summaries({str(tmp_path)!r}, ['a', 'b', 'c'])\n"
        "loop.train(summaries)\n"
        "summaries.close()\n"
        "print(len(seen['events']) > 0, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False"]
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "train").iterdir())
