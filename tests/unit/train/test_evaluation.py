"""engine.train.evaluation: accuracy, per-class metrics, confusion matrix, misclassified files."""

from __future__ import annotations

import numpy as np
import pytest

from engine.train.evaluation import evaluate, final_accuracy_line, format_report

LABELS = ["cat", "dog", "fox"]


def _one_hot_probs(predicted: list[int], confidence: float = 0.8) -> np.ndarray:
    probs = np.full((len(predicted), 3), (1 - confidence) / 2)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_accuracy_counts_argmax_hits() -> None:
    report = evaluate(LABELS, [0, 1, 2, 2], _one_hot_probs([0, 1, 1, 2]))
    assert report["accuracy"] == 0.75
    assert report["count"] == 4


def test_confusion_matrix_rows_are_true_classes() -> None:
    report = evaluate(LABELS, [0, 1, 2, 2], _one_hot_probs([0, 1, 1, 2]))
    assert report["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_per_class_precision_recall_f1_match_definitions() -> None:
    report = evaluate(LABELS, [0, 1, 2, 2], _one_hot_probs([0, 1, 1, 2]))
    dog = report["per_class"][1]
    fox = report["per_class"][2]
    assert (dog["precision"], dog["recall"], dog["support"]) == (0.5, 1.0, 1)
    assert dog["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5, abs=1e-6)
    assert (fox["precision"], fox["recall"], fox["support"]) == (1.0, 0.5, 2)


def test_misclassified_lists_each_wrong_file_with_labels_and_confidence() -> None:
    probs = _one_hot_probs([0, 2, 1], confidence=0.9)
    probs[2] = [0.1, 0.6, 0.3]
    report = evaluate(LABELS, [0, 1, 2], probs, paths=["a.jpg", "b.jpg", "c.jpg"])
    assert report["misclassified"] == [
        {"path": "b.jpg", "true_label": "dog", "predicted_label": "fox", "confidence": 0.9},
        {"path": "c.jpg", "true_label": "fox", "predicted_label": "dog", "confidence": 0.6},
    ]


def test_class_never_predicted_has_zero_precision_not_an_error() -> None:
    report = evaluate(LABELS, [0, 1], _one_hot_probs([0, 0]))
    assert report["per_class"][1]["precision"] == 0.0
    assert report["per_class"][2]["support"] == 0


@pytest.mark.parametrize(
    ("truth", "probs", "message"),
    [
        ([0, 1], np.zeros((3, 3)), "shape"),
        ([0, 3], np.zeros((2, 3)), "allowed 0..2"),
        ([0, 1], np.zeros((2, 2)), "shape"),
    ],
)
def test_bad_shapes_or_indices_are_refused(truth, probs, message) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(LABELS, truth, probs)


def test_format_report_ends_with_retrain_final_line() -> None:
    report = evaluate(LABELS, [0, 1, 2, 2], _one_hot_probs([0, 1, 1, 2]), paths=list("abcd"))
    lines = format_report(report, misclassified=True)
    assert lines[-1] == "Final test accuracy = 75.0% (N=4)"
    assert any(line.startswith("c  true=fox  predicted=dog") for line in lines)


def test_final_accuracy_line_rounds_to_one_decimal() -> None:
    assert final_accuracy_line(0.90055, 362) == "Final test accuracy = 90.1% (N=362)"


def test_top_confusions_list_the_most_frequent_mistakes_first() -> None:
    from engine.train.evaluation import top_confusions

    matrix = [[5, 2, 0], [1, 3, 4], [0, 4, 1]]
    rows = top_confusions(LABELS, matrix)
    assert [(r["true_label"], r["predicted_label"], r["count"]) for r in rows] == [
        ("dog", "fox", 4),
        ("fox", "dog", 4),
        ("cat", "dog", 2),
        ("dog", "cat", 1),
    ]
    assert rows[0]["share"] == 0.5  # 4 of dog's 8 test photos
    assert top_confusions(LABELS, matrix, limit=1) == rows[:1]
    assert top_confusions(LABELS, np.eye(3, dtype=int)) == []


def test_the_report_carries_its_top_confusions() -> None:
    report = evaluate(LABELS, [0, 1, 2, 2], _one_hot_probs([0, 1, 1, 2]))
    assert report["top_confusions"] == [
        {"true_label": "fox", "predicted_label": "dog", "count": 1, "share": 0.5}
    ]
