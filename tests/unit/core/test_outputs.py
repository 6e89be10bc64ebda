"""engine.core.outputs: the studio writes where a user points it only when nothing can be lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.outputs import (
    check_output,
    check_output_folder,
    output_path,
    owned,
    write_output_bytes,
)


@pytest.fixture(autouse=True)
def _own_home(studio_home: Path) -> Path:
    """The record of written outputs lives in the studio home: one per test."""
    return studio_home


def test_a_new_file_is_written_and_recorded_as_the_studios(tmp_path: Path) -> None:
    target = tmp_path / "out" / "graph.pb"
    write_output_bytes(target, b"model", what="--output_graph")
    assert target.read_bytes() == b"model"
    assert owned(target)


def test_a_file_the_studio_wrote_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "graph.pb"
    write_output_bytes(target, b"first", what="--output_graph")
    write_output_bytes(target, b"second", what="--output_graph")
    assert target.read_bytes() == b"second"


def test_a_foreign_file_is_refused_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "thesis.pb"
    target.write_bytes(b"three years of work")
    with pytest.raises(StudioError, match="was not written by Retrain Studio"):
        write_output_bytes(target, b"model", what="--output_graph")
    assert target.read_bytes() == b"three years of work"


def test_a_studio_file_changed_since_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "labels.txt"
    write_output_bytes(target, b"a\nb\n", what="--output_labels")
    target.write_bytes(b"edited by hand\n")
    assert not owned(target)
    with pytest.raises(StudioError, match="--output_labels"):
        write_output_bytes(target, b"c\n", what="--output_labels")
    assert target.read_bytes() == b"edited by hand\n"


def test_a_folder_is_never_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    with pytest.raises(StudioError, match="is a folder"):
        write_output_bytes(folder, b"model", what="--output_graph")
    with pytest.raises(StudioError, match="is a folder"), output_path(folder, what="--output_graph"):
        pytest.fail("the block must not run")
    assert (folder / "keep.txt").read_text() == "keep"


def test_nothing_is_written_inside_the_protected_dataset(tmp_path: Path) -> None:
    dataset = tmp_path / "photos"
    (dataset / "daisy").mkdir(parents=True)
    with pytest.raises(StudioError, match="must not be changed"):
        check_output(dataset / "daisy" / "graph.pb", what="--output_graph", protected=[dataset])
    with pytest.raises(StudioError, match="must not be changed"):
        check_output_folder(dataset / "tb", what="--summaries_dir", protected=[dataset])
    assert sorted(p.name for p in dataset.rglob("*")) == ["daisy"]


def test_a_new_folder_must_not_exist_yet(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "new" / "run", what="--summaries_dir") == (
        tmp_path / "new" / "run"
    )
    (tmp_path / "taken").mkdir()
    with pytest.raises(StudioError, match="exists already"):
        check_output_folder(tmp_path / "taken", what="--summaries_dir")


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "graph.pb"
    write_output_bytes(target, b"good", what="--output_graph")
    with pytest.raises(RuntimeError), output_path(target, what="--output_graph") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"good"
    assert sorted(p.name for p in target.parent.iterdir()) == ["graph.pb"]
