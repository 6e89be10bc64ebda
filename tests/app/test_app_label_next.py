"""Label these next on the Dataset page (AppTest): the ranking, one-click filing with Undo, another
class, a folder outside the dataset, Retrain now, and the order's curve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.data import edits, library
from tests.support.app import fake_job_registry, fresh_app
from tests.support.photo_tiles import tiles, write_tile_dataset

FAKE_TRAINER = Path(__file__).resolve().parents[1] / "support" / "fake_trainer.py"
pytestmark = pytest.mark.slow  # each test reads real features (LiteRT) for ~20 photos


def _dataset(tmp_path: Path, *, unsorted: bool = True) -> Path:
    root = write_tile_dataset(tmp_path / "photos", 8)
    library.write_manifest(root, "import")  # the studio's own: filing needs no opt-in
    if unsorted:
        (root / "unsorted").mkdir()
        for name in ("china", "flower"):
            for n, tile in enumerate(tiles(name)[20:22]):
                tile.save(root / "unsorted" / f"{name}-{n}.png")
    return root


def _open(root: Path):
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Local folder").run()
    app.text_input(key="dataset_local_path").input(str(root)).run()
    assert not app.exception
    return app


def _texts(elements) -> str:
    return " ".join(e.value for e in elements)


def test_the_unsorted_photos_are_ranked_and_one_click_files_one_undoably(
    tmp_path: Path, studio_home: Path
) -> None:
    root = _dataset(tmp_path)
    app = _open(root)
    assert "4 unsorted photo(s)" in _texts(app.caption)
    classes = next(d.value for d in app.dataframe if "label" in d.value.columns)["label"].tolist()
    assert "unsorted" not in classes  # not a class on the page either
    yes = app.button(key="label_next_yes_0")
    target = yes.label.removeprefix("This is ")
    assert target in ("china", "flower")
    before = {p.name for p in (root / "unsorted").iterdir()}
    yes.click().run()
    assert not app.exception
    (filed,) = before - {p.name for p in (root / "unsorted").iterdir()}
    assert (root / target / filed).is_file()
    photo = f"unsorted/{filed}"
    assert "3 unsorted photo(s)" in _texts(app.caption)  # re-ranked at once
    assert [e.op for e in edits.history(root)] == ["move"]
    app.button(key="label_next_notice_undo").click().run()
    assert not app.exception
    assert (root / photo).is_file()
    assert "4 unsorted photo(s)" in _texts(app.caption)


def test_another_class_is_one_pick_away(tmp_path: Path, studio_home: Path) -> None:
    root = _dataset(tmp_path)
    app = _open(root)
    suggested = app.button(key="label_next_yes_1").label.removeprefix("This is ")
    other = app.selectbox(key="label_next_to_1").value
    assert other != suggested
    app.button(key="label_next_file_1").click().run()
    assert not app.exception
    assert len(list((root / "unsorted").iterdir())) == 3
    assert any(p.name.startswith(("china-", "flower-")) for p in (root / other).iterdir())


def test_photos_from_a_folder_outside_are_copied_and_the_folder_left_alone(
    tmp_path: Path, studio_home: Path
) -> None:
    root = _dataset(tmp_path, unsorted=False)
    outside = tmp_path / "camera roll"
    outside.mkdir()
    tiles("china")[30].save(outside / "IMG_1.png")
    app = _open(root)
    assert "Nothing to label" in _texts(app.caption)
    app.text_input(key="label_next_folder").input(str(outside)).run()
    assert "1 unsorted photo(s)" in _texts(app.caption)
    app.button(key="label_next_yes_0").click().run()
    assert not app.exception
    assert (outside / "IMG_1.png").is_file()  # copied, never moved
    assert "Nothing to label" in _texts(app.caption)  # the copy is filed: not offered again


def test_a_folder_that_is_a_class_is_refused_in_words(tmp_path: Path, studio_home: Path) -> None:
    root = _dataset(tmp_path)
    app = _open(root)
    app.text_input(key="label_next_folder").input(str(root / "china")).run()
    assert not app.exception
    assert "not a folder of unsorted photos" in _texts(app.error)


def test_retrain_now_trains_on_the_photos_labelled_so_far(
    tmp_path: Path, studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = fake_job_registry(monkeypatch, FAKE_TRAINER)
    root = _dataset(tmp_path)
    app = _open(root)
    app.button(key="label_next_retrain").click().run()
    assert not app.exception
    assert "started on the photos labelled so far" in _texts(app.success)
    (started,) = [p for p in (studio_home / "runs").iterdir() if (p / "request.json").is_file()]
    assert json.loads((started / "request.json").read_text())["image_dir"] == str(root.resolve())
    registry.get(started.name).wait(60)


def test_the_curve_shows_the_digits_and_measures_this_dataset(tmp_path: Path, studio_home: Path) -> None:
    root = write_tile_dataset(tmp_path / "photos", 28)  # enough photos to label in rounds
    library.write_manifest(root, "import")
    shutil.rmtree(root / "unsorted", ignore_errors=True)
    app = _open(root)
    assert "labelled in this order or at random" in _texts(app.caption)  # the digits curve
    app.button(key="label_next_measure").click().run()
    assert not app.exception
    assert "This dataset: its test split" in _texts(app.caption)
