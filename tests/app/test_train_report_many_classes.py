"""The Train page's report with many classes: a table of top confusions, not a 1,000x1,000 heatmap."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.train.evaluation import CONFUSION_IMAGE_MAX_CLASSES, evaluate


def _report(classes: int) -> dict[str, Any]:
    labels = [f"class {i}" for i in range(classes)]
    truth = np.arange(classes).repeat(2)
    predicted = truth.copy()
    predicted[::2] = (truth[::2] + 1) % classes  # every class loses one photo to the next
    return evaluate(labels, truth, np.eye(classes)[predicted])


def _page(report: dict) -> None:  # its source runs alone: no names from this module
    from ui.train_report import render_confusions

    render_confusions(report)


@pytest.mark.parametrize("classes", [3, CONFUSION_IMAGE_MAX_CLASSES + 1, 1000])
def test_the_report_draws_the_matrix_or_lists_the_top_confusions(classes: int) -> None:
    app = AppTest.from_function(_page, args=(_report(classes),)).run(timeout=60)
    assert not app.exception
    charts = app.get("plotly_chart")
    if classes <= CONFUSION_IMAGE_MAX_CLASSES:
        assert len(charts) == 1 and not app.dataframe
        return
    assert not charts
    [table] = app.dataframe
    assert len(table.value) == 25
    assert list(table.value.iloc[0][["true_label", "predicted_label", "count"]]) == [
        "class 0",
        "class 1",
        1,
    ]
    assert f"{classes} classes are too many to draw" in app.markdown[0].value
