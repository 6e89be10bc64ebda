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


@pytest.mark.slow
def test_review_then_move_a_photo_then_undo_it(tmp_path: Path, studio_home: Path) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 8, "dogs": 8, "birds": 8})
    (root / "dogs" / "cats_000.jpg").write_bytes((root / "cats" / "cats_000.jpg").read_bytes() + b"\0")
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    app = _open_folder(root)
    app.checkbox(key="review_allow_edits").check().run()
    app.toggle(key="review_on").set_value(True).run()
    assert not app.exception
    assert [t.label.split(" (")[0] for t in app.tabs] == [
        "Label issues", "Near-duplicates and leaks", "Outliers", "History"
    ]  # fmt: skip
    move = next(b for b in app.button if b.key and b.key.endswith("_move"))
    card = move.key.removesuffix("_move")
    target = app.selectbox(key=f"{card}_to").value
    move.click().run()
    assert not app.exception
    after = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    assert after != before and any(p.startswith(f"{target}/") for p in set(after) - set(before))
    assert [e.op for e in edits.history(root)] == ["move"]
    app.button(key="review_undo_notice").click().run()
    assert not app.exception
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == before
