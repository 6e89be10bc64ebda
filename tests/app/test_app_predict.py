"""The Predict page (AppTest) with a real, tiny Keras model that tells red from blue."""

from __future__ import annotations

import shutil

import pytest

from tests.support.app import open_page, png_bytes, shown, write_colour_model_run, write_run

RED, BLUE = (220, 20, 20), (20, 20, 220)


def markdown_text(app) -> str:
    return " ".join(m.value for m in app.markdown)


def test_without_a_finished_run_it_points_to_the_train_page() -> None:
    write_run(state="failed", test_accuracy=None)
    app = open_page("predict")
    assert not app.exception
    assert "Train page" in app.info[0].value


def test_latest_finished_run_is_chosen_by_default() -> None:
    write_colour_model_run()
    newest = write_colour_model_run()
    app = open_page("predict")
    assert not app.exception
    assert app.selectbox(key="predict_run").value == newest.run_id


def test_one_photo_gets_its_label_probability_bars_and_time() -> None:
    write_colour_model_run()
    app = open_page("predict")
    app.file_uploader(key="predict_uploads").set_value(("red.png", png_bytes(RED), "image/png"))
    app.run()
    assert not app.exception
    assert "**red**" in markdown_text(app)
    assert " ms" in markdown_text(app)
    assert len(app.get("plotly_chart")) == 1
    assert [shown(c) for c in app.image[0].captions] == ["red.png"]


def test_a_non_image_gets_a_message_and_the_other_photos_are_still_predicted() -> None:
    write_colour_model_run()
    app = open_page("predict")
    app.file_uploader(key="predict_uploads").set_value(
        [
            ("red.png", png_bytes(RED), "image/png"),
            ("notes.txt", b"this is not a photo", "text/plain"),
            ("blue.png", png_bytes(BLUE), "image/png"),
        ]
    )
    app.run()
    assert not app.exception
    assert len(app.error) == 1
    assert "notes.txt" in shown(app.error[0].value)
    table = app.dataframe[0].value
    assert list(table["photo"]) == ["red.png", "notes.txt", "blue.png"]
    assert list(table["label"].fillna("-")) == ["red", "-", "blue"]
    assert table["probability"][0] > 0.5


def test_many_photos_offer_the_table_as_csv() -> None:
    write_colour_model_run()
    app = open_page("predict")
    app.file_uploader(key="predict_uploads").set_value(
        [("a.png", png_bytes(RED), "image/png"), ("b.png", png_bytes(BLUE), "image/png")]
    )
    app.run()
    (button,) = app.get("download_button")
    assert button.proto.label == "Download as CSV"


def test_the_heatmap_toggle_says_why_a_model_without_a_backbone_cannot_be_explained() -> None:
    write_colour_model_run()
    app = open_page("predict")
    app.file_uploader(key="predict_uploads").set_value(("red.png", png_bytes(RED), "image/png")).run()
    app.toggle(key="predict_heatmap").set_value(True).run()
    assert not app.exception
    assert "No heatmap" in shown(app.error[0].value)
    assert "**red**" in markdown_text(app)  # the answer is still there


@pytest.mark.slow
def test_the_heatmap_toggle_draws_the_heatmap_of_the_predicted_class(tiny_run) -> None:
    from engine.core import paths

    shutil.copytree(tiny_run.run.path, paths.runs_dir() / tiny_run.run.path.name)
    app = open_page("predict")
    photo = min((tiny_run.data_dir / "red").iterdir()).read_bytes()
    app.file_uploader(key="predict_uploads").set_value(("photo.jpg", photo, "image/jpeg")).run()
    app.toggle(key="predict_heatmap").set_value(True).run()
    assert not app.exception
    caption = shown(app.image[0].captions[0])
    assert "heatmap for" in caption


def test_the_serve_hint_shows_the_command_and_a_curl_call_for_the_chosen_run() -> None:
    run = write_colour_model_run()
    app = open_page("predict")
    assert not app.exception
    (expander,) = [e for e in app.expander if "Serve this model" in e.label]
    command, curl = (c.value for c in expander.code)
    assert command.startswith("python -m engine serve --graph ") and str(run.path) in command
    assert curl.startswith("curl -F file=@photo.jpg 'http://127.0.0.1:8000/predict")
