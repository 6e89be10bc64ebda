"""Scoring a trained classifier on the test split.

`evaluate` turns true labels and predicted probabilities into the report a user
reads after training: accuracy, per-class precision / recall / F1, the
confusion matrix, the most frequent confusions, and every misclassified file
with its confidence. Plain numpy, so it needs no TensorFlow and is easy to test.

A confusion matrix is drawn (TensorBoard, the Train page) only up to
`CONFUSION_IMAGE_MAX_CLASSES` classes: at 1,000 classes the image would be
48,000 pixels a side. Above that the top confusions are shown instead; the
report always keeps the whole matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Above this many classes the confusion matrix is listed as its top confusions, not drawn.
CONFUSION_IMAGE_MAX_CLASSES = 40
TOP_CONFUSIONS = 25


def evaluate(
    labels: Sequence[str],
    true_indices: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    *,
    paths: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score predictions against the truth.

    Args:
        labels: class names in output order.
        true_indices: the true class index of each example.
        probabilities: `(N, len(labels))` predicted probabilities.
        paths: a name per example (the image's relative path), used to list the
            misclassified ones. Defaults to None (examples are named by index).

    Returns:
        A JSON-ready dict: `accuracy`, `count`, `labels`, `per_class` (a list
        of `{label, precision, recall, f1, support}`), `confusion_matrix` (rows
        = true class, columns = predicted), `top_confusions` (see
        `top_confusions`), `misclassified` (a list of `{path, true_label,
        predicted_label, confidence}`, most confident first).

    Raises:
        ValueError: when the shapes disagree or an index is out of range.
    """
    labels = list(labels)
    truth = np.asarray(true_indices, dtype=np.int64).reshape(-1)
    probs = np.asarray(probabilities, dtype=np.float64)
    if not labels:
        raise ValueError("labels is empty; give the class names in output order")
    if probs.ndim != 2 or probs.shape != (truth.size, len(labels)):
        raise ValueError(
            f"probabilities has shape {probs.shape}; expected ({truth.size}, {len(labels)}) "
            "for that many examples and classes"
        )
    if truth.size and (truth.min() < 0 or truth.max() >= len(labels)):
        raise ValueError(
            f"true_indices holds {truth.min()}..{truth.max()}; allowed 0..{len(labels) - 1}"
        )
    if paths is not None and len(paths) != truth.size:
        raise ValueError(f"paths has {len(paths)} entries; expected {truth.size}, one per example")
    names = list(paths) if paths is not None else [f"#{i}" for i in range(truth.size)]

    predicted = probs.argmax(axis=1) if truth.size else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(truth, predicted, len(labels))
    per_class = []
    for index, label in enumerate(labels):
        hits = int(matrix[index, index])
        predicted_count = int(matrix[:, index].sum())
        support = int(matrix[index, :].sum())
        precision = hits / predicted_count if predicted_count else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {
                "label": label,
                "precision": round(precision, 6),
                "recall": round(recall, 6),
                "f1": round(f1, 6),
                "support": support,
            }
        )
    wrong = np.flatnonzero(predicted != truth)
    misclassified = [
        {
            "path": names[i],
            "true_label": labels[int(truth[i])],
            "predicted_label": labels[int(predicted[i])],
            "confidence": round(float(probs[i, predicted[i]]), 6),
        }
        for i in wrong
    ]
    misclassified.sort(key=lambda row: -row["confidence"])
    accuracy = float((predicted == truth).mean()) if truth.size else 0.0
    return {
        "accuracy": round(accuracy, 6),
        "count": int(truth.size),
        "labels": labels,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "top_confusions": top_confusions(labels, matrix),
        "misclassified": misclassified,
    }


def top_confusions(
    labels: Sequence[str], matrix: np.ndarray | Sequence[Sequence[int]], limit: int = TOP_CONFUSIONS
) -> list[dict[str, Any]]:
    """The most frequent mistakes: (true class, predicted class) pairs off the diagonal.

    Args:
        labels: class names in output order.
        matrix: the confusion matrix, rows = true class.
        limit: how many pairs at most. Defaults to 25.

    Returns:
        `{true_label, predicted_label, count, share}` dicts, most frequent
        first (ties in class order); `share` is the part of the true class's
        test photos taken for the predicted one. Pairs that never happened are
        left out.
    """
    counts = np.array(matrix, dtype=np.int64)
    support = counts.sum(axis=1)
    np.fill_diagonal(counts, 0)
    cells = np.flatnonzero(counts)
    cells = cells[np.argsort(-counts.flat[cells], kind="stable")][:limit]
    rows = []
    for cell in cells:
        true, predicted = divmod(int(cell), counts.shape[1])
        count = int(counts[true, predicted])
        rows.append(
            {
                "true_label": labels[true],
                "predicted_label": labels[predicted],
                "count": count,
                "share": round(count / support[true], 6),
            }
        )
    return rows


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, class_count: int) -> np.ndarray:
    """Count (true, predicted) pairs.

    Args:
        truth: true class indices.
        predicted: predicted class indices, same length.
        class_count: the number of classes.

    Returns:
        An int64 `(class_count, class_count)` matrix; rows are true classes.
    """
    matrix = np.zeros((class_count, class_count), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def format_report(report: dict[str, Any], *, misclassified: bool = False) -> list[str]:
    """The report as printable lines; the last one is retrain.py's final line.

    Args:
        report: what `evaluate` returned.
        misclassified: also list every misclassified file. Defaults to False.

    Returns:
        Lines without newlines, ending with `Final test accuracy = 90.1% (N=362)`.
    """
    lines = [f"{'class':<24} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for row in report["per_class"]:
        lines.append(
            f"{row['label'][:24]:<24} {row['precision']:>9.3f} {row['recall']:>7.3f} "
            f"{row['f1']:>7.3f} {row['support']:>8d}"
        )
    if misclassified:
        lines.append(f"=== MISCLASSIFIED TEST IMAGES ({len(report['misclassified'])}) ===")
        for row in report["misclassified"]:
            lines.append(
                f"{row['path']}  true={row['true_label']}  predicted={row['predicted_label']} "
                f"({row['confidence'] * 100:.1f}%)"
            )
    lines.append(final_accuracy_line(report["accuracy"], report["count"]))
    return lines


def final_accuracy_line(accuracy: float, count: int) -> str:
    """retrain.py's last line: `Final test accuracy = 90.1% (N=362)`."""
    return f"Final test accuracy = {accuracy * 100:.1f}% (N={count})"
