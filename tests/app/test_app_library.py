"""The Dataset page's "Your datasets" (AppTest), and the leftover sweep when the app starts."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engine.data.library import list_datasets
from engine.data.sources import import_zip
from tests.support.app import APP_TIMEOUT_S, fresh_app
from tests.support.cli import REPO_ROOT
from tests.support.factories import photo_entries, write_class_folders, zip_bytes


def app_on_local_folder() -> AppTest:
    """A fresh app whose Dataset page waits for a folder (so no demo is generated)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=APP_TIMEOUT_S)
    app.session_state["dataset_source"] = "Local folder"
    return app.run()


def listed(app: AppTest) -> list[str]:
    table = next(d.value for d in app.dataframe if "kind" in d.value.columns)
    return sorted(table["name"])


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "datasets"
    monkeypatch.setenv("RETRAIN_STUDIO_DATASETS", str(root))
    import_zip(zip_bytes(photo_entries()), dest_root=root, name="birds")
    import_zip(zip_bytes(photo_entries()), dest_root=root, name="cars")
    write_class_folders(root / "my_photos", {"a": 3, "b": 3})  # the user's own
    return root


def test_your_datasets_lists_only_the_studios_and_deletes_one_after_a_confirmation(
    datasets: Path,
) -> None:
    app = app_on_local_folder()
    assert not app.exception
    assert app.expander[0].label.startswith("Your datasets (2, ")
    assert listed(app) == ["birds", "cars"]

    app.selectbox(key="datasets_chosen").set_value("birds").run()
    app.button(key="datasets_delete").click().run()
    assert "birds" in app.warning[0].value and "cannot be undone" in app.warning[0].value
    assert (datasets / "birds").is_dir()  # nothing happens before the confirmation

    app.button(key="datasets_delete_yes").click().run()
    assert not app.exception
    assert not (datasets / "birds").exists()
    assert listed(app) == ["cars"]
    assert (datasets / "my_photos" / "a").is_dir()


def test_cancel_keeps_the_dataset(datasets: Path) -> None:
    app = app_on_local_folder()
    app.selectbox(key="datasets_chosen").set_value("cars").run()
    app.button(key="datasets_delete").click().run()
    app.button(key="datasets_delete_no").click().run()
    assert not app.exception
    assert not app.warning
    assert (datasets / "cars").is_dir() and listed(app) == ["birds", "cars"]


def test_deleting_the_upload_on_show_goes_back_to_the_demo_without_importing_it_again() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in photo_entries().items():
            archive.writestr(name, data)
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Upload a zip").run()
    app.file_uploader(key="dataset_zip").set_value(("kites.zip", buffer.getvalue(), "application/zip"))
    app.run()
    assert "kites" in listed(app)

    app.selectbox(key="datasets_chosen").set_value("kites").run()
    app.button(key="datasets_delete").click().run()
    app.button(key="datasets_delete_yes").click().run()
    assert not app.exception
    assert app.radio(key="dataset_source").value == "Demo"
    assert not [d for d in list_datasets() if d.name.startswith("kites")]


def test_the_app_sweeps_what_a_killed_import_left_when_it_starts(datasets: Path) -> None:
    leftover = datasets / ".upload.import-ab12cd34"
    (leftover / "daisy").mkdir(parents=True)
    then = time.time() - 7200
    os.utime(leftover, (then, then))
    young = datasets / ".other.import-cd34ef56"
    young.mkdir()
    app = app_on_local_folder()
    assert not app.exception
    assert not leftover.exists()
    assert young.is_dir()  # may belong to an import under way
