"""The Dataset page (AppTest): the demo default, a local folder, a zip, flower_photos."""

from __future__ import annotations

import io
import zipfile

from tests.support.app import fresh_app, table_with
from tests.support.factories import write_class_folders
from ui import state
from ui.browse import SAMPLES_PER_CLASS


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
    assert not app.button  # nothing to download
    assert metrics(app)["Classes"] == "2"
