"""The Review section of the Dataset page (AppTest): the opt-in, the tabs, move, history and undo."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data import edits
from tests.support.app import fresh_app
from tests.support.factories import write_class_folders


def _open_folder(root: Path):
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Local folder").run()
    app.text_input(key="dataset_local_path").input(str(root)).run()
    assert not app.exception
    return app


def test_a_users_own_folder_asks_before_anything_is_changed(tmp_path: Path, studio_home: Path) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 4, "dogs": 4})
    app = _open_folder(root)
    assert app.checkbox(key="review_allow_edits").value is False
    assert not edits.edits_allowed(root)
    app.checkbox(key="review_allow_edits").check().run()
    assert not app.exception
    assert edits.edits_allowed(root)


def _select(app, key: str, rows: list[int]):
    """Tick `rows` of the table `key` (what clicking their checkboxes does in a browser)."""
    app.session_state[key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return app.run()


def _photos(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))


@pytest.mark.slow
def test_the_review_table_moves_the_selected_photos_in_one_undoable_edit(
    tmp_path: Path, studio_home: Path
) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 8, "dogs": 8, "birds": 8})
    (root / "dogs" / "cats_000.jpg").write_bytes((root / "cats" / "cats_000.jpg").read_bytes() + b"\0")
    before = _photos(root)
    app = _open_folder(root)
    app.checkbox(key="review_allow_edits").check().run()
    app.toggle(key="review_on").set_value(True).run()
    assert not app.exception
    assert [t.label.split(" (")[0] for t in app.tabs] == [
        "Label issues", "Near-duplicates and leaks", "Outliers", "History"
    ]  # fmt: skip
    table = next(d for d in app.dataframe if d.key == "review_dup_table_0")
    rows = table.value
    assert list(rows.columns) == ["photo", "path", "class", "score", "why"]
    assert rows["photo"].str.startswith("data:image/png;base64,").all()
    assert {"cats/cats_000.jpg", "dogs/cats_000.jpg"} <= set(rows["path"])  # the re-saved copy
    assert app.button(key="review_dup_move").disabled  # nothing selected yet
    picked = rows["path"].tolist()[:2]
    app = _select(app, "review_dup_table_0", [0, 1])
    assert app.button(key="review_dup_move").label == "Move 2"
    target = app.selectbox(key="review_dup_target").value
    app.button(key="review_dup_move").click().run()
    assert not app.exception
    after = _photos(root)
    moved = {Path(p).name for p in set(before) - set(after)}
    assert moved == {Path(p).name for p in picked if Path(p).parts[0] != target}
    assert all(
        f"{target}/{name}" in after or any(a.endswith(name) and a.startswith(target) for a in after)
        for name in moved
    )
    history = edits.history(root)
    assert [e.op for e in history] == ["move"] and len(history[0].moves) == len(moved)
    app.button(key="review_undo_notice").click().run()
    assert not app.exception
    assert _photos(root) == before


@pytest.mark.slow
def test_details_show_the_photo_and_its_history_and_say_when_no_model_exists(
    tmp_path: Path, studio_home: Path
) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 8, "dogs": 8, "birds": 8})
    (root / "dogs" / "cats_000.jpg").write_bytes((root / "cats" / "cats_000.jpg").read_bytes() + b"\0")
    app = _open_folder(root)
    app.checkbox(key="review_allow_edits").check().run()
    app.toggle(key="review_on").set_value(True).run()
    first = next(d for d in app.dataframe if d.key == "review_dup_table_0").value["path"][0]
    edit = edits.move_to_class(root, [first], "birds")
    edits.undo(root, edit.id)  # back where it was, with two lines of history
    app = _select(app.run(), "review_dup_table_0", [0])
    app.button(key="review_dup_details").click().run()
    assert not app.exception
    from ui.safe import md

    assert any(m.value.startswith(f"**{md(first)}**") for m in app.markdown)
    assert "No trained model on this dataset yet" in " ".join(c.value for c in app.caption)
    tables = [d.value for d in app.dataframe if d.key is None and "change" in d.value.columns]
    history = tables[-1]  # the panel's, after the History tab's
    assert (
        history["change"].str.startswith("put back").iloc[0]
        and history["change"].str.startswith("moved").iloc[1]
    )


@pytest.mark.slow
def test_a_kept_photo_leaves_the_table_and_the_review_survives_a_new_session(
    tmp_path: Path, studio_home: Path
) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 8, "dogs": 8, "birds": 8})
    (root / "dogs" / "cats_000.jpg").write_bytes((root / "cats" / "cats_000.jpg").read_bytes() + b"\0")
    app = _open_folder(root)
    app.checkbox(key="review_allow_edits").check().run()
    app.toggle(key="review_on").set_value(True).run()
    first = next(d for d in app.dataframe if d.key == "review_dup_table_0").value["path"][0]
    app = _select(app, "review_dup_table_0", [0])
    app.button(key="review_dup_keep").click().run()
    table = next(d for d in app.dataframe if (d.key or "").startswith("review_dup_table")).value
    assert first not in set(table["path"])
    from engine.train.review.store import store_file

    stored = store_file(root).stat().st_mtime_ns
    again = _open_folder(root)  # a new browser session: the kept review is read, not redone
    again.toggle(key="review_on").set_value(True).run()
    assert not again.exception
    assert store_file(root).stat().st_mtime_ns == stored
    assert first not in set(
        next(d for d in again.dataframe if (d.key or "").startswith("review_dup_table")).value["path"]
    )
