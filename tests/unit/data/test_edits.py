"""Writable datasets: move, set aside, add, keep, undo, the opt-in, and a crash between move and journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.core.errors import ImageError, StudioError
from engine.data import edits, library
from tests.support.factories import image_bytes, make_image, write_class_folders


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    write_class_folders(root, {"cats": 3, "dogs": 3})
    library.write_manifest(root, "import")  # the studio's own: no opt-in needed
    return root


def _photos(root: Path, cls: str) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / cls).iterdir())


def test_move_then_undo_round_trips_exactly(dataset: Path, studio_home: Path) -> None:
    before = _tree(dataset)
    photo = _photos(dataset, "cats")[0]
    edit = edits.move_to_class(dataset, [photo], "dogs")
    assert not (dataset / photo).exists()
    assert (dataset / "dogs" / Path(photo).name).read_bytes() == before[photo]
    undo = edits.undo(dataset)
    assert undo.undoes == edit.id
    assert _tree(dataset) == before
    history = edits.history(dataset)
    assert [e.op for e in history] == ["move", "undo"]
    assert history[0].undone_by == undo.id
    with pytest.raises(StudioError, match="nothing to undo"):
        edits.undo(dataset)


def test_move_to_a_new_class_creates_it_and_a_taken_name_keeps_the_split(
    dataset: Path, studio_home: Path
) -> None:
    photo = _photos(dataset, "cats")[0]
    name = Path(photo).name
    (dataset / "birds").mkdir()
    (dataset / "birds" / name).write_bytes(b"other")
    edit = edits.move_to_class(dataset, [photo], "birds")
    moved = Path(edit.moves[0][1])
    assert moved.parent == dataset / "birds" and "_nohash_" in moved.name
    from engine.data.splits import split_bucket

    assert split_bucket(moved.name) == split_bucket(name)
    assert (dataset / "birds" / name).read_bytes() == b"other"


def test_set_aside_goes_to_the_quarantine_in_the_studio_home_and_comes_back(
    dataset: Path, studio_home: Path
) -> None:
    before = _tree(dataset)
    photos = _photos(dataset, "dogs")[:2]
    edit = edits.set_aside(dataset, photos)
    quarantine = edits.quarantine_dir(dataset, studio_home=studio_home)
    for src, dst in edit.moves:
        assert not Path(src).exists()
        assert Path(dst).is_file() and Path(dst).is_relative_to(quarantine)
    edits.undo(dataset, edit.id)
    assert _tree(dataset) == before


def test_add_photos_creates_the_class_and_undo_sets_them_aside(dataset: Path, studio_home: Path) -> None:
    frames = [image_bytes(make_image(0, n)) for n in range(2)]
    added = edits.add_photos(dataset, "hamsters", frames)
    assert [p.read_bytes() for p in added] == frames
    assert all(p.parent == dataset / "hamsters" and p.suffix == ".jpg" for p in added)
    undo = edits.undo(dataset)
    assert not any(p.exists() for p in added)
    kept = sorted(Path(dst).read_bytes() for _, dst in undo.moves)
    assert kept == sorted(frames)  # set aside, never deleted


def test_add_photos_refuses_bytes_that_are_not_an_image_and_writes_nothing(
    dataset: Path, studio_home: Path
) -> None:
    before = _tree(dataset)
    with pytest.raises(ImageError, match="image 2 of 2"):
        edits.add_photos(dataset, "cats", [image_bytes(make_image(0, 1)), b"<html>"])
    with pytest.raises(StudioError, match="suffix"):
        edits.add_photos(dataset, "cats", [image_bytes(make_image(0, 1))], suffix=".exe")
    assert _tree(dataset) == before


@pytest.mark.parametrize("name", ["", "..", ".hidden", "a/b", "..\\x", "tab\there"])
def test_bad_class_names_are_refused(dataset: Path, studio_home: Path, name: str) -> None:
    with pytest.raises(StudioError, match="cannot be a folder name"):
        edits.move_to_class(dataset, [_photos(dataset, "cats")[0]], name)


def test_a_users_own_folder_needs_the_opt_in(tmp_path: Path, studio_home: Path) -> None:
    root = tmp_path / "mine"
    write_class_folders(root, {"a": 2, "b": 2})
    before = _tree(root)
    photo = _photos(root, "a")[0]
    with pytest.raises(edits.EditsNotAllowed, match="your own folder"):
        edits.move_to_class(root, [photo], "b")
    with pytest.raises(edits.EditsNotAllowed):
        edits.add_photos(root, "a", [image_bytes(make_image(0, 1))])
    assert _tree(root) == before
    edits.allow_edits(root)
    assert edits.edits_allowed(root)
    edits.move_to_class(root, [photo], "b")
    edits.allow_edits(root, False)
    with pytest.raises(edits.EditsNotAllowed):
        edits.undo(root)


def test_photos_outside_the_dataset_or_links_are_refused(
    dataset: Path, tmp_path: Path, studio_home: Path
) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(image_bytes(make_image(0, 9)))
    (dataset / "cats" / "link.jpg").symlink_to(outside)
    for bad in [str(outside), "../outside.jpg", "cats/../../outside.jpg", "cats/link.jpg", "top.jpg"]:
        with pytest.raises(StudioError):
            edits.move_to_class(dataset, [bad], "dogs")
    assert outside.exists() and (dataset / "cats" / "link.jpg").is_symlink()


def test_keep_is_remembered_and_undoable(dataset: Path, studio_home: Path) -> None:
    photo = _photos(dataset, "cats")[1]
    edits.keep(dataset, [photo])
    assert edits.kept(dataset) == {photo}
    edits.undo(dataset)
    assert edits.kept(dataset) == set()


def test_undo_refuses_when_the_photo_moved_on(dataset: Path, studio_home: Path) -> None:
    photo = _photos(dataset, "cats")[0]
    edit = edits.move_to_class(dataset, [photo], "dogs")
    Path(edit.moves[0][1]).rename(dataset / "dogs" / "elsewhere.jpg")
    with pytest.raises(StudioError, match="no longer where"):
        edits.undo(dataset)


def test_a_torn_journal_line_is_healed(dataset: Path, studio_home: Path) -> None:
    edits.move_to_class(dataset, [_photos(dataset, "cats")[0]], "dogs")
    journal = edits.journal_file(dataset, studio_home=studio_home)
    with open(journal, "ab") as handle:
        handle.write(b'{"id": "x", "sta')
    assert [e.op for e in edits.history(dataset)] == ["move"]
    edits.undo(dataset)


_CHILD = """
import os, signal, sys
from engine.data import edits
from engine.data import edit_journal
edit_journal.after_each_move = lambda: os.kill(os.getpid(), signal.SIGKILL)
op = sys.argv[1]
if op == "move":
    edits.move_to_class(sys.argv[2], [sys.argv[3]], "dogs", studio_home=sys.argv[4])
elif op == "set_aside":
    edits.set_aside(sys.argv[2], [sys.argv[3]], studio_home=sys.argv[4])
else:
    from tests.support.factories import image_bytes, make_image
    edits.add_photos(sys.argv[2], "cats", [image_bytes(make_image(0, 7))], studio_home=sys.argv[4])
"""


@pytest.mark.parametrize("op", ["move", "set_aside", "add"])
def test_a_crash_between_the_move_and_the_journal_loses_nothing(
    dataset: Path, studio_home: Path, op: str
) -> None:
    before = _tree(dataset)
    photo = _photos(dataset, "cats")[0]
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), op, str(dataset), photo, str(studio_home)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    journal = edits.journal_file(dataset, studio_home=studio_home).read_text()
    assert '"intent"' in journal and '"done"' not in journal  # killed after the move, before the record
    history = edits.history(dataset)  # reconciles
    assert [e.op for e in history] == [op]
    assert history[0].moves and all(Path(dst).is_file() for _, dst in history[0].moves)
    if op != "add":
        assert not (dataset / photo).exists()
    edits.undo(dataset)
    if op == "add":
        assert _tree(dataset) == before  # the added photo is set aside again
    else:
        assert _tree(dataset) == before


def test_a_tampered_journal_never_moves_files_outside_the_dataset(
    dataset: Path, tmp_path: Path, studio_home: Path
) -> None:
    from engine.core import jsonlines

    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    journal = edits.journal_file(dataset, studio_home=studio_home)
    jsonlines.append_line(
        journal,
        {
            "id": "x",
            "state": "intent",
            "op": "move",
            "moves": [[str(outside), str(dataset / "cats" / "p.txt")]],
        },
    )
    jsonlines.append_line(
        journal,
        {
            "id": "y",
            "state": "intent",
            "op": "move",
            "moves": [[str(dataset / "cats" / "cats_000.jpg"), str(outside)]],
        },
    )
    sneaky = dataset / "cats" / ".." / ".." / "sneaky.jpg"  # lexically inside the dataset
    moves = [[str(dataset / "cats" / "cats_001.jpg"), str(sneaky)]]
    jsonlines.append_line(journal, {"id": "z", "state": "intent", "op": "move", "moves": moves})
    edits.reconcile(dataset)
    assert outside.read_text() == "keep me" and (dataset / "cats" / "cats_000.jpg").exists()
    assert not (dataset / "cats" / "p.txt").exists()
    assert (dataset / "cats" / "cats_001.jpg").exists() and not (tmp_path / "sneaky.jpg").exists()
