"""The exposure gate (AppTest with `server.address` set): nothing served until roots and a password."""

from __future__ import annotations

import pytest

from tests.support.app import fresh_app, sign_in
from ui import access

PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize("address", ["0.0.0.0", "", "192.168.1.20", "::"])
def test_exposed_app_without_roots_or_password_serves_nothing_and_says_both(
    listening_on, monkeypatch, address: str
) -> None:
    monkeypatch.delenv(access.PASSWORD_ENV, raising=False)
    listening_on(address or None)
    app = fresh_app()
    assert not app.exception
    assert [t.value for t in app.title] == ["Retrain Studio is not shared yet"]
    message = app.error[0].value
    assert "RETRAIN_STUDIO_DATA_ROOTS" in message and access.PASSWORD_ENV in message
    assert not app.radio  # no page: the Dataset page's source picker is not drawn
    assert not app.text_input  # and no sign-in form either


def test_exposed_app_with_only_the_roots_says_the_password_is_missing(
    listening_on, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_DATA_ROOTS", str(tmp_path))
    monkeypatch.delenv(access.PASSWORD_ENV, raising=False)
    listening_on("0.0.0.0")
    app = fresh_app()
    message = app.error[0].value
    assert access.PASSWORD_ENV in message and "RETRAIN_STUDIO_DATA_ROOTS" not in message
    assert not app.radio


def test_exposed_app_with_only_a_password_says_the_roots_are_missing(listening_on, monkeypatch) -> None:
    monkeypatch.setenv(access.PASSWORD_ENV, PASSWORD)
    listening_on("0.0.0.0")
    app = fresh_app()
    message = app.error[0].value
    assert "RETRAIN_STUDIO_DATA_ROOTS" in message and access.PASSWORD_ENV not in message
    assert not app.radio


def test_with_both_set_a_wrong_password_is_refused_and_the_right_one_opens_the_app(
    listening_on, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv(access.PASSWORD_ENV, PASSWORD)
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY_S", 0.0)
    listening_on("0.0.0.0")
    app = fresh_app()
    assert not app.exception
    assert [t.value for t in app.title] == ["Retrain Studio"]
    assert not app.radio
    app = sign_in(app, PASSWORD + " ")
    assert "Wrong password" in app.error[0].value
    assert not app.radio
    app = sign_in(app, PASSWORD)
    assert not app.exception
    assert [t.value for t in app.title] == ["Dataset"]
    assert app.radio(key="dataset_source").value == "Demo"
    app.switch_page("app_pages/runs.py").run()  # signed in for the whole session
    assert [t.value for t in app.title] == ["Runs"]


def test_the_password_may_come_from_streamlit_secrets(listening_on, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RETRAIN_STUDIO_DATA_ROOTS", str(tmp_path))
    monkeypatch.delenv(access.PASSWORD_ENV, raising=False)
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY_S", 0.0)
    listening_on("0.0.0.0")
    from streamlit.testing.v1 import AppTest

    from tests.support.app import APP_TIMEOUT_S
    from tests.support.cli import REPO_ROOT

    app = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=APP_TIMEOUT_S)
    app.secrets["password"] = "from-secrets"
    app.run()
    assert not app.error  # nothing missing: the form is shown
    app = sign_in(app, "from-secrets")
    assert [t.value for t in app.title] == ["Dataset"]


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_neither(listening_on, monkeypatch, address: str) -> None:
    monkeypatch.delenv(access.PASSWORD_ENV, raising=False)
    listening_on(address)
    app = fresh_app()
    assert not app.exception
    assert [t.value for t in app.title] == ["Dataset"]


def test_exposed_pages_name_studio_folders_instead_of_server_paths(
    listening_on, monkeypatch, tmp_path
) -> None:
    """A signed-in visitor sees "dataset …", never the server's datasets folder."""
    import io
    import zipfile

    from engine.core.paths import datasets_dir
    from tests.support.factories import write_class_folders

    root = write_class_folders(tmp_path / "zipped", {"red": 3, "green": 3})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in root.rglob("*.jpg"):
            archive.write(path, path.relative_to(root).as_posix())
    monkeypatch.setenv("RETRAIN_STUDIO_DATA_ROOTS", str(tmp_path / "roots"))
    monkeypatch.setenv(access.PASSWORD_ENV, PASSWORD)
    listening_on("0.0.0.0")
    app = sign_in(fresh_app(), PASSWORD)
    app.radio(key="dataset_source").set_value("Upload a zip").run()
    app.file_uploader(key="dataset_zip").set_value(("colours.zip", buffer.getvalue(), "application/zip"))
    app.run()
    assert not app.exception
    shown_text = " ".join(e.value for e in (*app.success, *app.caption, *app.markdown))
    assert "dataset colours" in shown_text
    assert str(datasets_dir()) not in shown_text.replace("\\", "")
