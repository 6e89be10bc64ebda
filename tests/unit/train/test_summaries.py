"""engine.train.summaries: what TensorBoard gets for many classes (no giant images)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engine.train.evaluation import CONFUSION_IMAGE_MAX_CLASSES, evaluate
from engine.train.summaries import SAMPLE_CLASSES_IN_GRID, confusions_markdown


def test_confusions_markdown_is_a_table_with_shares() -> None:
    text = confusions_markdown(
        [{"true_label": "a|b", "predicted_label": "c", "count": 3, "share": 0.25}]
    )
    assert text.splitlines() == [
        "| true | predicted | photos | share of the true class |",
        "| --- | --- | ---: | ---: |",
        "| a\\|b | c | 3 | 25% |",
    ]
    assert confusions_markdown([]) == "No test photo was misclassified."


@pytest.mark.slow
@pytest.mark.parametrize("classes", [3, CONFUSION_IMAGE_MAX_CLASSES + 1])
def test_final_summaries_draw_the_matrix_only_for_few_classes(tmp_path: Path, classes: int) -> None:
    from engine.train.config import TrainConfig
    from engine.train.summaries import Summaries
    from tests.support.event_logs import tensor_tags

    labels = [f"class {i}" for i in range(classes)]
    truth = np.arange(classes).repeat(2)
    probabilities = np.eye(classes)[np.roll(truth, 1)]
    report = evaluate(labels, truth, probabilities)
    writers = Summaries(tmp_path / "tb", labels)
    writers.write_final(report, 5, TrainConfig(), "run")
    writers.close()
    tags = tensor_tags(tmp_path / "tb" / "validation")
    drawn = classes <= CONFUSION_IMAGE_MAX_CLASSES
    assert ("test_confusion_matrix" in tags) is drawn
    assert ("test_top_confusions" in tags) is not drawn


class _Backbone:
    """Loads every photo as a grey square of its class index (what `Backbone.load` returns)."""

    def load(self, path: str, size: int) -> np.ndarray:
        return np.full((size, size, 3), int(Path(path).parent.name), np.uint8)


def test_the_sample_grid_of_many_classes_shows_the_first_classes_only(tmp_path: Path) -> None:
    import tensorflow as tf

    from engine.train.summaries import SAMPLES_PER_CLASS_IN_GRID, Summaries

    size, classes = 8, 300
    labels = [f"{i}" for i in range(classes)]
    records = [
        SimpleNamespace(label=f"{i}", path=f"/x/{i}/{n}.jpg") for i in range(classes) for n in range(5)
    ]
    writers = Summaries(tmp_path / "tb", labels)
    writers.write_samples(records, labels, _Backbone(), size)
    writers.close()
    [event] = [
        e
        for f in (tmp_path / "tb" / "train").iterdir()
        for e in tf.compat.v1.train.summary_iterator(str(f))
        if e.summary.value
    ]
    [value] = event.summary.value
    grid = tf.image.decode_png(tf.make_ndarray(value.tensor)[2]).numpy()
    assert grid.shape == (SAMPLE_CLASSES_IN_GRID * size, SAMPLES_PER_CLASS_IN_GRID * size, 3)
    assert [grid[r * size, 0, 0] for r in range(SAMPLE_CLASSES_IN_GRID)] == list(
        range(SAMPLE_CLASSES_IN_GRID)
    )
    assert (
        f"(the first {SAMPLE_CLASSES_IN_GRID} of {classes} classes)"
        in value.metadata.summary_description
    )
