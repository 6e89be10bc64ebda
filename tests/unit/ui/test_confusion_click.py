"""The clickable confusion matrix: a marker on every cell, and the cell a selection picked."""

from __future__ import annotations

from ui.figures import clickable_confusion_figure, selected_cell


def test_every_cell_has_a_marker_that_names_it() -> None:
    figure = clickable_confusion_figure(["cat", "dog"], [[3, 1], [0, 4]])
    markers = figure.data[-1]
    assert len(markers.x) == 4
    assert [list(c) for c in markers.customdata] == [
        ["cat", "cat"],
        ["cat", "dog"],
        ["dog", "cat"],
        ["dog", "dog"],
    ]
    assert list(markers.x) == ["cat", "dog", "cat", "dog"] and list(markers.y) == [
        "cat",
        "cat",
        "dog",
        "dog",
    ]


def test_the_selected_cell_is_read_from_the_selection_event() -> None:
    event = {"selection": {"points": [{"x": "dog", "y": "cat", "customdata": ["cat", "dog"]}]}}
    assert selected_cell(event) == ("cat", "dog")
    assert selected_cell({"selection": {"points": []}}) is None
    assert selected_cell(None) is None
    assert selected_cell({"selection": {"points": [{"x": 1, "y": 2}]}}) is None  # the heatmap itself
