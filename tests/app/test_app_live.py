"""The Predict page's live mode (AppTest): the camera component, saving frames, retraining.

AppTest has no browser, so no camera plays here: a frame is handed to the
tab's live classifier directly, as the video worker would (the browser path
is tests/e2e/test_e2e_live.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from engine.data import edits
from tests.support.app import fake_job_registry, open_page, shown, write_colour_model_run
from tests.support.factories import write_class_folders

FAKE_TRAINER = Path(__file__).resolve().parents[1] / "support" / "fake_trainer.py"


class FakeStreamer:
    """Stands in for `streamlit_webrtc.webrtc_streamer` (AppTest has no browser and no WebRTC).

    It keeps what the page asked for and hands frames to the page's frame
    callback as the video worker would: as `av.VideoFrame`s.
    """

    def __init__(self) -> None:
        self.playing = True
        self.kwargs: dict = {}

    def __call__(self, **kwargs):
        self.kwargs = kwargs
        return SimpleNamespace(state=SimpleNamespace(playing=self.playing, signalling=False))

    def send(self, colour: tuple[int, int, int]) -> None:
        import av

        image = np.zeros((480, 640, 3), np.uint8)
        image[...] = colour
        returned = self.kwargs["video_frame_callback"](av.VideoFrame.from_ndarray(image, format="rgb24"))
        assert returned.width == 640


@pytest.fixture
def camera(monkeypatch: pytest.MonkeyPatch) -> FakeStreamer:
    import streamlit_webrtc

    fake = FakeStreamer()
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", fake)
    return fake


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "photos", {"red": 3, "blue": 3})


def live_page(folder: Path):
    run = write_colour_model_run()
    config = run.read_config() | {"image_dir": str(folder), "image_size": 32, "seed": 3}
    run.write_config(config)
    app = open_page("predict")
    app.button_group(key="predict_mode").set_value("Live camera").run()
    assert not app.exception
    return app, run


def texts(elements) -> str:
    return " ".join(shown(e.value) for e in elements)


def test_live_mode_shows_the_camera_and_waits_for_it(user_folder: Path, camera: FakeStreamer) -> None:
    camera.playing = False
    app, _ = live_page(user_folder)
    help_text = texts(app.markdown)
    assert "NotAllowedError" in help_text and "blocked the camera" in help_text
    assert "NotFoundError" in help_text and "no camera was found" in help_text
    assert app.toggle(key="predict_presenter").value is False
    # localhost only: no STUN/TURN server; video only; frames handled in the worker, newest first
    assert camera.kwargs["rtc_configuration"] == {"iceServers": []}
    assert camera.kwargs["media_stream_constraints"]["audio"] is False
    assert camera.kwargs["async_processing"] is True
    assert "blocked the camera" in camera.kwargs["translations"]["device_access_denied"]
    assert "No camera found" in camera.kwargs["translations"]["device_not_available"]


def test_frames_from_the_video_worker_give_the_live_label(
    user_folder: Path, camera: FakeStreamer
) -> None:
    app, _ = live_page(user_folder)
    for _ in range(3):
        camera.send((230, 10, 10))
    app.run()
    assert not app.exception
    label = [h.value for h in app.get("html") if "live-label" in h.value]
    assert label and 'data-label="red"' in label[0]
    assert next(p.value for p in app.get("progress")) > 0.9


def test_a_users_folder_takes_frames_only_after_the_opt_in(
    user_folder: Path, camera: FakeStreamer
) -> None:
    app, _ = live_page(user_folder)
    assert "your own folder" in texts(app.info)
    assert not edits.edits_allowed(user_folder)
    app.button(key="live_allow").click().run()
    assert edits.edits_allowed(user_folder)
    assert app.selectbox(key="live_class").options == ["red", "blue"]


def test_save_this_frame_adds_a_journaled_photo_to_the_class(
    user_folder: Path, camera: FakeStreamer
) -> None:
    edits.allow_edits(user_folder)
    app, _ = live_page(user_folder)
    app.button(key="live_save").click().run()
    assert "No frame yet" in texts(app.info)
    camera.send((10, 10, 200))
    app.selectbox(key="live_class").set_value("red").run()
    app.button(key="live_save").click().run()
    assert not app.exception
    assert "Saved 1 frame as" in texts(app.success)
    added = sorted(p for p in (user_folder / "red").iterdir() if p.name.startswith("camera-"))
    assert len(added) == 1
    with Image.open(added[0]) as photo:
        assert photo.size == (640, 480)
        assert np.asarray(photo)[..., 2].mean() > 150  # the blue frame, saved as "red"
    assert [e.op for e in edits.history(user_folder)] == ["add"]


def save_a_frame_as_new_class(folder: Path, camera: FakeStreamer, name: str):
    edits.allow_edits(folder)
    app, _ = live_page(folder)
    camera.send((0, 200, 0))
    app.text_input(key="live_new_class").input(name).run()
    return app.button(key="live_save").click().run()


def test_a_new_class_typed_in_gets_its_folder(user_folder: Path, camera: FakeStreamer) -> None:
    app = save_a_frame_as_new_class(user_folder, camera, "green")
    assert not app.exception
    assert len(list((user_folder / "green").glob("camera-*.jpg"))) == 1


def test_a_bad_class_name_is_refused_and_nothing_is_written(
    user_folder: Path, camera: FakeStreamer
) -> None:
    app = save_a_frame_as_new_class(user_folder, camera, "../escape")
    assert not app.exception
    assert "Cannot save the frames" in texts(app.error)
    assert not (user_folder.parent / "escape").exists()
    assert sorted(p.name for p in user_folder.iterdir()) == ["blue", "red"]


def test_a_burst_needs_the_camera_playing(user_folder: Path, camera: FakeStreamer) -> None:
    camera.playing = False
    edits.allow_edits(user_folder)
    app, _ = live_page(user_folder)
    app.button(key="live_save_burst").click().run()
    assert "Start the camera first" in texts(app.info)


def test_retrain_now_repeats_the_runs_settings_on_the_dataset(
    user_folder: Path, camera: FakeStreamer, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = fake_job_registry(monkeypatch, FAKE_TRAINER)
    edits.allow_edits(user_folder)
    app, run = live_page(user_folder)
    app.button(key="live_retrain").click().run()
    assert not app.exception
    (started,) = [p for p in run.path.parent.iterdir() if (p / "request.json").is_file()]
    job = registry.get(started.name)
    request = json.loads((started / "request.json").read_text())
    assert request["image_dir"] == str(user_folder)
    assert (request["image_size"], request["seed"]) == (32, 3)
    assert app.selectbox(key="predict_run").value == run.run_id  # the old model stays live meanwhile
    assert job.wait(60) == "done"
    app.run()  # what the page's follower does once the training is done
    assert not app.exception, app.exception
    # the page now follows the new run (the fake trainer's model is not a real one: the page says
    # it cannot load it; tests/e2e/test_e2e_live.py sees a real new model answer the camera)
    assert app.selectbox(key="predict_run").value == started.name, "the new run is the live one"
    assert started.name in texts(app.error)
    assert "live_retraining" not in app.session_state


def test_presenter_view_hides_the_feedback_and_keeps_the_label(
    user_folder: Path, camera: FakeStreamer
) -> None:
    app, _ = live_page(user_folder)
    app.toggle(key="predict_presenter").set_value(True).run()
    assert not app.exception
    assert "Wrong? Teach it" not in " ".join(h.value for h in app.subheader)


def test_a_saved_frame_shows_on_the_dataset_page_at_once(
    user_folder: Path, camera: FakeStreamer
) -> None:
    edits.allow_edits(user_folder)
    app, _ = live_page(user_folder)
    app.switch_page("app_pages/dataset.py").run()
    app.radio(key="dataset_source").set_value("Local folder").run()
    app.text_input(key="dataset_local_path").input(str(user_folder)).run()
    assert {m.label: m.value for m in app.metric}["Photos"] == "6"
    app.switch_page("app_pages/predict.py").run()
    app.button_group(key="predict_mode").set_value("Live camera").run()
    camera.send((200, 0, 0))
    app.button(key="live_save").click().run()
    assert "Saved 1 frame as" in texts(app.success)
    app.switch_page("app_pages/dataset.py").run()
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Photos"] == "7"


def test_a_burst_saves_the_next_frames_from_the_camera(user_folder: Path, camera: FakeStreamer) -> None:
    import threading

    edits.allow_edits(user_folder)
    app, _ = live_page(user_folder)
    app.number_input(key="live_burst").set_value(3).run()
    stop = threading.Event()

    def stream() -> None:  # the video worker keeps delivering frames while the page waits
        while not stop.wait(0.03):
            camera.send((20, 20, 220))

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        app.button(key="live_save_burst").click().run()
    finally:
        stop.set()
        worker.join(10)
    assert not app.exception
    assert "Saved 3 frames as" in texts(app.success)
    assert len(list((user_folder / "red").glob("camera-*.jpg"))) == 3
    assert len(edits.history(user_folder)) == 1  # one journaled edit: one undo takes the burst back
