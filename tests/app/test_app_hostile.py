"""What a visitor can do (AppTest): hostile names, zips that make the import fail, a crash.

Every case checks what reaches the browser: the name shown as text (escaped
Markdown, `ui.safe.md`), a message instead of a traceback, and no server
path when the app is exposed. RELIABILITY.md lists each case.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

from engine.core.paths import datasets_dir, home_dir
from tests.support.app import (
    fresh_app,
    open_page,
    png_bytes,
    shown,
    sign_in,
    write_colour_model_run,
    write_run,
)
from tests.support.factories import image_bytes, make_image
from ui import errors
from ui.safe import md

# A folder name is enough to make a browser fetch a URL when shown as Markdown
# (WHATWG URL parsing accepts "https:host" without the slashes a name cannot hold).
IMAGE_NAME = "![x](https:example.invalid)"
HOSTILE_NAMES = [IMAGE_NAME, "<img src=x onerror=alert(1)>", ":material/home: $x$ **b**", "&copy; `c`"]


def markdown_texts(app) -> list[str]:
    """Every Markdown string on the page: text, captions, alerts, image captions, metric labels."""
    values = [e.value for kind in ("markdown", "caption", "error", "warning", "success", "info")
              for e in getattr(app, kind)]  # fmt: skip
    values += [c for image in app.image for c in image.captions]
    values += [m.label for m in app.metric]
    return values


def assert_shown_as_text(app, name: str) -> None:
    """`name` appears escaped somewhere and never raw, in every Markdown string of the page."""
    texts = markdown_texts(app)
    assert any(md(name) in t for t in texts), f"{name!r} is not shown"
    assert not any(name in t for t in texts), f"{name!r} reaches Markdown unescaped"


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def photo(index: int) -> bytes:
    return image_bytes(make_image(index % 3, index))


def upload_zip(app, name: str, data: bytes):
    app.radio(key="dataset_source").set_value("Upload a zip").run()
    app.file_uploader(key="dataset_zip").set_value((name, data, "application/zip"))
    return app.run()


def test_hostile_class_folder_and_file_names_in_a_zip_are_shown_as_text() -> None:
    entries = {f"{IMAGE_NAME}/{IMAGE_NAME}{i}.jpg": photo(i) for i in range(3)}
    entries |= {f"red/{HOSTILE_NAMES[1]}{i}.jpg": photo(10 + i) for i in range(3)}
    entries |= {f"blue/photo{i}.jpg": photo(20 + i) for i in range(3)}
    app = upload_zip(fresh_app(), f"{HOSTILE_NAMES[2]}.zip", zip_bytes(entries))
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Classes"] == "3"
    assert_shown_as_text(app, IMAGE_NAME)  # the class folder, and its photos' captions
    assert any(shown(c) == f"{IMAGE_NAME}0.jpg" for image in app.image for c in image.captions)
    assert_shown_as_text(app, HOSTILE_NAMES[1])
    sidebar = [m.value for m in app.sidebar.markdown]
    assert any(md(f"zip: {HOSTILE_NAMES[2]}.zip") in m for m in sidebar)
    assert not any(HOSTILE_NAMES[2] in m for m in sidebar)


def test_a_hostile_typed_folder_is_quoted_as_text_in_the_error() -> None:
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Local folder").run()
    app.text_input(key="dataset_local_path").input(HOSTILE_NAMES[2]).run()
    assert not app.exception
    assert_shown_as_text(app, HOSTILE_NAMES[2])


def test_local_folders_with_hostile_names_are_shown_as_text(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    names = [n for n in HOSTILE_NAMES if "/" not in n]  # a folder name cannot hold "/"
    for index, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for variant in range(3):
            (root / name / f"{name}{variant}.jpg").write_bytes(photo(3 * index + variant))
    app = fresh_app()
    app.radio(key="dataset_source").set_value("Local folder").run()
    app.text_input(key="dataset_local_path").input(str(root)).run()
    assert not app.exception
    for name in names:
        assert_shown_as_text(app, name)


# Each zip makes the import itself fail with an OSError: a name the file system refuses.
BAD_ZIPS = {
    "file-folder clash": {"red/a.jpg": photo(0), "red/a.jpg/b.jpg": photo(1), "blue/c.jpg": photo(2)},
    "folder name over 255 bytes": {f"red/{'d' * 300}/a.jpg": photo(0), "blue/b.jpg": photo(1)},
    "file name over 255 bytes": {f"red/{'f' * 300}.jpg": photo(0), "blue/b.jpg": photo(1)},
}


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_a_zip_the_file_system_refuses_is_a_message_without_server_paths(exposed, case: str) -> None:
    app = sign_in(fresh_app(), exposed)
    app = upload_zip(app, "bad.zip", zip_bytes(BAD_ZIPS[case]))
    assert not app.exception
    (message,) = [e.value for e in app.error]
    assert shown(message).startswith("Cannot import bad.zip: ")
    if "255" in case:  # refused before anything is extracted, with the limit and what to do
        assert "limited to 255 bytes; shorten it and zip again" in shown(message)
    for secret in (str(datasets_dir()), str(home_dir()), "Traceback"):
        assert secret not in shown(message)
    assert not [p for p in datasets_dir().glob("*bad*")], "a failed import leaves nothing behind"


def test_an_unexpected_error_is_a_reference_to_the_server_log_not_a_traceback(monkeypatch) -> None:
    import engine.runs.listing

    def broken(*args, **kwargs):
        raise RuntimeError("boom in /srv/secret/place")

    monkeypatch.setattr(engine.runs.listing, "list_runs", broken)
    app = open_page("runs")
    assert not app.exception
    (message,) = [e.value for e in app.error]
    assert "Something went wrong" in message
    assert "/srv/secret" not in message and "RuntimeError" not in message
    reference = re.search(r"reference \*\*([0-9a-f]{8})\*\*", message).group(1)
    logged = errors.log_file().read_text(encoding="utf-8")
    assert f"reference {reference}" in logged
    assert "RuntimeError: boom in /srv/secret/place" in logged and "Traceback" in logged


def test_an_unexpected_error_in_the_live_view_fragment_is_a_reference_too(monkeypatch) -> None:
    import ui.train_report

    def broken(*args, **kwargs):
        raise ValueError("fragment failure")

    write_run(state="running")
    monkeypatch.setattr(ui.train_report, "render_live", broken)
    app = open_page("train")
    assert not app.exception
    assert any("Something went wrong" in shown(e.value) for e in app.error)
    assert "ValueError: fragment failure" in errors.log_file().read_text(encoding="utf-8")


def test_streamlit_itself_never_shows_error_details() -> None:
    import tomllib

    from tests.support.cli import REPO_ROOT

    settings = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["client"]["showErrorDetails"] == "none"


def test_hostile_upload_names_on_predict_are_shown_as_text() -> None:
    write_colour_model_run()
    app = open_page("predict")
    app.file_uploader(key="predict_uploads").set_value(
        [
            (f"{IMAGE_NAME}.png", png_bytes((220, 20, 20)), "image/png"),
            (f"{HOSTILE_NAMES[1]}.txt", b"not a photo", "text/plain"),
        ]
    )
    app.run()
    assert not app.exception
    assert_shown_as_text(app, IMAGE_NAME)
    assert_shown_as_text(app, HOSTILE_NAMES[1])
