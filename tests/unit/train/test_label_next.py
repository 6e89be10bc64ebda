"""Label these next: ActiveLab's order, its curve against random order, the ranking of a real
unsorted folder, filing photos from it (undoable), and the `label-next` command."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import StudioError
from engine.data import edits, library
from engine.data.unsorted import file_unsorted, scan_unsorted, unsorted_folder
from engine.train.review import label_next as ln
from tests.support.cli import run_engine
from tests.support.features import blobs
from tests.support.photo_tiles import tiles, write_tile_dataset


def test_activelab_puts_the_photo_the_model_is_least_sure_of_first() -> None:
    probs = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [0.7, 0.2, 0.1], [0.34, 0.33, 0.33]])
    scores = ln.activelab_scores(probs)
    assert np.argsort(scores).tolist() == [3, 1, 2, 0]
    assert ((scores > 1 / 3) & (scores <= 1)).all()


def test_photos_between_the_classes_rank_before_photos_deep_inside_one() -> None:
    x, y = blobs(300, dims=8, classes=2, spread=0.4, seed=2)
    centres = np.stack([x[y == c].mean(axis=0) for c in (0, 1)])
    between = (centres[0] + centres[1]) / 2
    unlabelled = np.stack([centres[0], between, centres[1]]).astype(np.float32)
    order, probs = ln.rank(x, y, unlabelled, 2)
    assert order[0] == 1
    assert probs[0].argmax() == 0 and probs[2].argmax() == 1


def test_on_real_digits_activelab_order_beats_random_order() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()  # real scans; their pixels stand in for a backbone's features
    test = np.random.default_rng(0).random(len(digits.target)) < 0.2
    curve = ln.order_curve(digits.data.astype(np.float32), digits.target, test, rounds=10, seeds=2)
    assert curve["labelled"] == list(range(20, 121, 10))
    assert curve["activelab"][0] == curve["random"][0]  # the same start
    assert curve["activelab"][-1] > curve["random"][-1]
    assert np.mean(curve["activelab"][5:]) > np.mean(curve["random"][5:])
    assert curve["test_photos"] == int(test.sum())


def test_a_curve_needs_enough_photos() -> None:
    x, y = blobs(20, classes=2)
    with pytest.raises(StudioError, match="needs 2 or more classes"):
        ln.order_curve(x, y, np.zeros(20, bool))


def _dataset(tmp_path: Path) -> Path:
    """Tiles of the two fixture photos as classes, six others (and a note, and a filed copy) unsorted."""
    root = write_tile_dataset(tmp_path / "photos", 8)
    library.write_manifest(root, "import")
    loose = root / "unsorted"
    loose.mkdir()
    for name in ("china", "flower"):
        for n, tile in enumerate(tiles(name)[20:23]):
            tile.save(loose / f"{name}-{n}.png")
    (loose / "notes.txt").write_text("not a photo")
    shutil.copy(root / "china" / "china_000.png", loose / "already.png")
    return root


@pytest.mark.slow
def test_the_unsorted_folder_is_ranked_with_the_class_each_photo_looks_like(
    tmp_path: Path, studio_home: Path
) -> None:
    root = _dataset(tmp_path)
    result = ln.label_next(root, bottleneck_dir=str(tmp_path / "bottlenecks"))
    assert result.folder == (root / "unsorted").resolve() and result.inside
    assert result.labelled == 16 and result.labels == ["china", "flower"]
    assert result.already_filed == 1
    assert [p for p, _ in result.skipped] == ["unsorted/notes.txt"]
    assert [s.rank for s in result.suggestions] == [1, 2, 3, 4, 5, 6]
    assert [s.score for s in result.suggestions] == sorted(s.score for s in result.suggestions)
    right = [s.suggested_folder == Path(s.path).name.split("-")[0] for s in result.suggestions]
    assert sum(right) >= 5
    rows = list(csv.DictReader(ln.write_csv(result, tmp_path / "next.csv").open()))
    assert tuple(rows[0]) == ln.CSV_COLUMNS and [r["path"] for r in rows] == [
        s.path for s in result.suggestions
    ]


def test_filing_moves_an_unsorted_photo_into_a_class_and_undo_puts_it_back(
    tmp_path: Path, studio_home: Path
) -> None:
    root = _dataset(tmp_path)
    edit = file_unsorted(root, ["unsorted/china-0.png"], "china")
    assert (root / "china" / "china-0.png").is_file() and not (
        root / "unsorted" / "china-0.png"
    ).exists()
    assert edit.op == "move"
    edits.undo(root, edit.id)
    assert (root / "unsorted" / "china-0.png").is_file()
    names = {r.rel_path for r in scan_unsorted(root).images}
    assert "unsorted/china-0.png" in names and "unsorted/already.png" in names


def test_filing_from_a_folder_outside_the_dataset_copies_and_leaves_it_untouched(
    tmp_path: Path, studio_home: Path
) -> None:
    root = _dataset(tmp_path)
    outside = tmp_path / "camera roll"
    outside.mkdir()
    tiles("flower")[25].save(outside / "IMG_1.png")
    before = (outside / "IMG_1.png").read_bytes()
    edit = file_unsorted(root, ["IMG_1.png"], "flower", folder=outside)
    assert edit.op == "add" and (outside / "IMG_1.png").read_bytes() == before
    added = [Path(to) for _, to in edit.moves]
    assert (
        len(added) == 1
        and added[0].parent == root.resolve() / "flower"
        and added[0].read_bytes() == before
    )
    # the copy is filed: the same bytes are no longer offered
    assert scan_unsorted(root, outside, filed={_sha(added[0])}).images == []


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("photos", "target", "message"),
    [
        (["unsorted/none.png"], "china", "is not a photo of the unsorted folder"),
        (["china/china_000.png"], "flower", "is not a photo of the unsorted folder"),
        (["unsorted/../china/china_001.png"], "flower", "is not a photo of the unsorted folder"),
        (["unsorted/china-0.png"], "Unsorted", "not a class"),
        (["unsorted/china-0.png"], "../x", "cannot be a folder name"),
    ],
)
def test_filing_refuses_what_is_not_an_unsorted_photo_or_a_class(
    tmp_path: Path, studio_home: Path, photos: list[str], target: str, message: str
) -> None:
    root = _dataset(tmp_path)
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    with pytest.raises(StudioError, match=message):
        file_unsorted(root, photos, target)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before


def test_a_users_own_folder_is_filed_into_only_after_the_opt_in(
    tmp_path: Path, studio_home: Path
) -> None:
    root = _dataset(tmp_path)
    (root / library.MANIFEST_NAME).unlink()
    with pytest.raises(edits.EditsNotAllowed):
        file_unsorted(root, ["unsorted/china-0.png"], "china")
    assert (root / "unsorted" / "china-0.png").is_file()


def test_the_unsorted_folder_must_not_be_the_dataset_or_a_class(tmp_path: Path) -> None:
    root = write_tile_dataset(tmp_path / "photos", 3)
    for folder in (root, root / "china"):
        with pytest.raises(StudioError, match="not a folder of unsorted photos"):
            unsorted_folder(root, folder)
    with pytest.raises(StudioError, match="is not a folder"):
        unsorted_folder(root, tmp_path / "missing")
    assert scan_unsorted(root).images == []  # no unsorted/ yet: nothing to rank


def test_label_next_is_listed_with_its_flags() -> None:
    done = run_engine("label-next", "--help")
    assert done.returncode == 0
    for flag in (
        "--image_dir",
        "--unsorted_dir",
        "--output_csv",
        "--file",
        "--measure_curve",
        "unsorted",
    ):
        assert flag in done.stdout


def test_label_next_bad_input_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    one_class = tmp_path / "one"
    tiles_root = write_tile_dataset(tmp_path / "two", 3)
    write_tile_dataset(one_class, 3)
    shutil.rmtree(one_class / "flower")
    for args, expected in [
        (["--image_dir", str(tmp_path / "missing")], "does not exist"),
        (["--image_dir", str(one_class)], "needs at least 2 classes"),
        (
            ["--image_dir", str(tiles_root), "--unsorted_dir", str(tiles_root / "china")],
            "not a folder of unsorted",
        ),
        (["--image_dir", str(tiles_root), "--file", "no-class-given"], "is not PATH=CLASS"),
        (["--image_dir", str(tiles_root), "--file", "../x.png=china"], "is not a photo of the unsorted"),
    ]:
        done = run_engine("label-next", *args, home=tmp_path / "home")
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and expected in lines[-1]
        assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_cli_ranks_files_and_writes_the_csv(tmp_path: Path, studio_home: Path) -> None:
    root = _dataset(tmp_path)
    out = tmp_path / "next.csv"
    done = run_engine(
        "label-next", "--image_dir", str(root), "--output_csv", str(out),
        "--file", "unsorted/flower-1.png=flower", home=studio_home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        "6 unsorted photo(s)" in done.stdout and "filed unsorted/flower-1.png as flower" in done.stdout
    )
    assert "unsorted" in done.stderr  # the progress bar of the unsorted scan
    assert len(list(csv.DictReader(out.open()))) == 6
    assert (root / "flower" / "flower-1.png").is_file()
    assert [e.op for e in edits.history(root, studio_home=studio_home)] == ["move"]
