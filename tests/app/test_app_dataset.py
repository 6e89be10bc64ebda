"""The Dataset page (AppTest): the demo default, a local folder, a zip, flower_photos."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.support.app import fresh_app, shown, table_with
from tests.support.factories import write_class_folders
from ui import state
from ui.browse import MESSAGES_SHOWN, PAGE_SIZES, SAMPLES_PER_CLASS


def selected_label(app) -> str:
    # AppTest drops sidebar elements on reruns (a real browser shows them: see tests/e2e)
    return app.session_state[state.DATASET_LABEL_KEY]


def metrics(app) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_demo_dataset_is_the_default_with_a_sample_grid_per_class() -> None:
    app = fresh_app()
    assert not app.exception
    assert app.radio(key="dataset_source").value == "Demo"
    assert metrics(app)["Classes"] == "5"
    grids = app.image
    assert len(grids) == 5
    assert all(len(grid.value) == SAMPLES_PER_CLASS for grid in grids)
    assert "demo" in " ".join(m.value for m in app.sidebar.markdown)


def test_local_folder_shows_its_classes_and_lists_the_corrupt_file(tmp_path) -> None:
    root = write_class_folders(tmp_path / "pets", {"cats": 4, "dogs": 4})
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Local folder").run()
    app.text_input(key="dataset_local_path").input(str(root)).run()
    assert not app.exception
    assert metrics(app)["Classes"] == "2"
    assert metrics(app)["Photos"] == "8"
    problems = table_with(app, "rel_path")
    assert list(problems["rel_path"]) == ["cats/broken.jpg"]
    assert problems["reason"][0]
    assert str(root) == selected_label(app)


def test_missing_local_folder_says_what_is_wrong(tmp_path) -> None:
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Local folder").run()
    app.text_input(key="dataset_local_path").input(str(tmp_path / "nowhere")).run()
    assert not app.exception
    assert "nowhere" in app.error[0].value


def test_uploaded_zip_is_imported_and_shown(tmp_path) -> None:
    root = write_class_folders(tmp_path / "zipped", {"red": 3, "green": 3})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in root.rglob("*.jpg"):
            archive.write(path, path.relative_to(root).as_posix())
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Upload a zip").run()
    app.file_uploader(key="dataset_zip").set_value(("colours.zip", buffer.getvalue(), "application/zip"))
    app.run()
    assert not app.exception
    assert metrics(app)["Classes"] == "2"
    assert selected_label(app) == "zip: colours.zip"


def test_flower_photos_already_downloaded_is_used_without_downloading(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_DATASETS", str(tmp_path / "datasets"))
    write_class_folders(tmp_path / "datasets" / "flower_photos", {"daisy": 3, "tulips": 3})
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Download flower_photos").run()
    assert not app.exception
    assert "dataset_download" not in [b.key for b in app.button]  # nothing to download
    assert metrics(app)["Classes"] == "2"


@pytest.fixture
def many_classes(tmp_path) -> Path:
    """30 classes of 3 photos: more than a page, and a warning per class (few photos)."""
    return write_class_folders(
        tmp_path / "many", {f"class_{i:02d}": 3 for i in range(30)}, size=(32, 32)
    )


def open_folder(root: Path):
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Local folder").run()
    return app.text_input(key="dataset_local_path").input(str(root)).run()


def grid_headings(app) -> list[str]:
    return [shown(m.value).split("**")[1] for m in app.markdown if m.value.startswith("**")]


def test_many_classes_are_shown_a_page_at_a_time_with_a_table_of_all(many_classes) -> None:
    app = open_folder(many_classes)
    assert not app.exception
    size = PAGE_SIZES[0]
    assert grid_headings(app) == [f"class {i:02d}" for i in range(size)]
    assert len(app.image) == size
    assert "Classes 1–12 of 30" in [c.value for c in app.caption]
    assert len(table_with(app, "folder")) == 30  # every class, in the table
    assert app.number_input(key="dataset_class_page_12_").max == 3
    app.number_input(key="dataset_class_page_12_").set_value(3).run()
    assert grid_headings(app) == [f"class {i:02d}" for i in range(24, 30)]
    app.selectbox(key="dataset_class_page_size").set_value(24).run()
    assert len(grid_headings(app)) == 24  # a new page size starts again at page 1
    assert grid_headings(app)[0] == "class 00"


def test_searching_shows_only_matching_classes_and_says_when_none_match(many_classes) -> None:
    app = open_folder(many_classes)
    app.text_input(key="dataset_class_query").input("CLASS 2").run()
    assert grid_headings(app) == [f"class {i:02d}" for i in range(20, 30)]
    assert any("of 10 matching" in c.value for c in app.caption)
    app.text_input(key="dataset_class_query").input("class_07").run()  # the folder name matches too
    assert grid_headings(app) == ["class 07"]
    app.text_input(key="dataset_class_query").input("zebra").run()
    assert not app.exception
    assert "zebra" in shown(app.info[0].value)
    assert not app.image


def test_a_warning_per_class_is_folded_after_the_first_few(many_classes) -> None:
    app = open_folder(many_classes)
    assert len(app.warning) == MESSAGES_SHOWN
    folded = table_with(app, "warning")
    assert len(folded) == 30 - MESSAGES_SHOWN
    assert all("only 3 images" in w for w in folded["warning"])
