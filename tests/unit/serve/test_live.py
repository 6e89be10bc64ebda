"""engine.serve.live: the live camera's frame logic (rate, dropping, smoothing, threads, bursts).

Most tests give the classifier a model of their own (a function of the
frame's mean colour, or one that blocks until told), so they know the right
answer and control the timing; the last ones run a real LiteRT model from a
hand-set colour classifier run.
"""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.serve.inference import Predictor
from engine.serve.live import MAX_BURST, LiveClassifier, Smoother, encode_jpeg
from tests.support.tiny_model import write_colour_run
from tests.support.waiting import wait_for

LABELS = ["red", "green", "blue"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(colour: int, *, height: int = 48, width: int = 64) -> np.ndarray:
    """A frame filled with one primary colour (0 red, 1 green, 2 blue)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., colour] = 255
    return image


def by_colour(batch: np.ndarray) -> np.ndarray:
    """A model that answers each image's mean colour, as probabilities."""
    means = batch.reshape(len(batch), -1, 3).mean(axis=1) + 1e-3
    return means / means.sum(axis=1, keepdims=True)


def classifier(**kwargs) -> LiveClassifier:
    return LiveClassifier(
        labels=LABELS, predict=kwargs.pop("predict", by_colour), prepare=lambda f: f, **kwargs
    )


# ---------------------------------------------------------------- smoothing


def test_label_follows_the_frames_after_a_few_frames_not_at_once() -> None:
    live = classifier(alpha=0.3, margin=0.1)
    for _ in range(5):
        live.process(frame(0))
    assert live.reading().label == "red"
    labels = [live.process(frame(2)).label for _ in range(10)]
    # one blue frame does not switch the label; a steady run of them does
    assert labels[0] == "red"
    assert labels[-1] == "blue"
    assert labels.index("blue") >= 2


def test_label_does_not_flicker_between_two_close_classes() -> None:
    probabilities = [np.array([[0.52, 0.48, 0.0]]), np.array([[0.47, 0.53, 0.0]])]
    calls = iter(probabilities * 20)
    live = classifier(predict=lambda batch: next(calls), alpha=0.5, margin=0.1)
    shown = [live.process(frame(0)).label for _ in range(40)]
    assert set(shown) == {"red"}
    # the raw top label changed on every frame; the smoothed probabilities stay close
    assert abs(live.reading().probabilities[0] - 0.5) < 0.05


def test_the_first_prediction_is_shown_as_it_is() -> None:
    live = classifier()
    reading = live.process(frame(1))
    assert reading.label == "green"
    assert reading.probability == pytest.approx(by_colour(frame(1)[None])[0][1])
    assert reading.top(2)[0][0] == "green"


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"classes": 0}, "classes=0"), ({"alpha": 0.0}, "alpha=0.0"), ({"margin": 1.0}, "margin=1.0")],
)
def test_smoother_settings_out_of_range_are_refused_with_the_value(kwargs, word) -> None:
    settings = {"classes": 3, **kwargs}
    with pytest.raises(ValueError, match=word.replace(".", r"\.")):
        Smoother(settings.pop("classes"), **settings)


def test_smoother_refuses_a_vector_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="got 2 probabilities for a model of 3 classes"):
        Smoother(3).update(np.array([0.5, 0.5]))


# ---------------------------------------------------------------- rate, latency, dropping


def test_rate_and_latency_come_from_the_clock() -> None:
    clock = FakeClock()
    live = classifier(clock=clock)
    for _ in range(11):
        captured = clock.now
        clock.now += 0.02  # the prediction takes 20 ms
        live.process(frame(0), captured_at=captured)
        clock.now += 0.08  # the next frame comes 100 ms after this one
    reading = live.reading()
    assert reading.predictions == 11
    assert reading.rate == pytest.approx(10.0, rel=0.1)
    assert reading.latency_ms == pytest.approx(20.0)


def test_the_rate_forgets_predictions_older_than_its_window() -> None:
    clock = FakeClock()
    live = classifier(clock=clock)
    for _ in range(5):
        live.process(frame(0))
        clock.now += 0.1
    clock.now += 60.0
    assert live.reading().rate == 0.0


def test_a_frame_that_comes_while_a_prediction_runs_is_dropped_not_queued() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(batch: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait(10)
        return by_colour(batch)

    live = classifier(predict=slow)
    worker = threading.Thread(target=live.process, args=(frame(0),))
    worker.start()
    assert entered.wait(10)
    reading = live.process(frame(2))  # returns at once: the model is busy
    assert (reading.frames, reading.predictions, reading.dropped) == (2, 0, 1)
    # the dropped frame is still the newest frame (a save takes what the camera shows)
    assert live.latest_frame()[0, 0, 2] == 255
    release.set()
    worker.join(10)
    reading = live.reading()
    assert (reading.predictions, reading.dropped, reading.label) == (1, 1, "red")


def test_several_threads_calling_it_never_run_the_model_twice_at_once() -> None:
    inside, most = [0], [0]
    guard = threading.Lock()

    def counting(batch: np.ndarray) -> np.ndarray:
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        probabilities = by_colour(batch)
        with guard:
            inside[0] -= 1
        return probabilities

    live = classifier(predict=counting)
    threads, per_thread = 8, 300
    start = threading.Barrier(threads)

    def feed(colour: int) -> None:
        start.wait()
        for _ in range(per_thread):
            live.process(frame(colour % 3, height=8, width=8))
            live.reading()

    workers = [threading.Thread(target=feed, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    reading = live.reading()
    assert most[0] == 1
    assert reading.frames == threads * per_thread
    assert reading.predictions + reading.dropped == threads * per_thread
    assert reading.predictions > 0
    assert sum(reading.probabilities) == pytest.approx(1.0)


def test_a_frame_the_model_cannot_take_is_reported_and_the_stream_goes_on() -> None:
    def picky(batch: np.ndarray) -> np.ndarray:
        if batch.shape[1] != 48:
            raise ValueError(f"input of {batch.shape[1]} px")
        return by_colour(batch)

    live = classifier(predict=picky)
    reading = live.process(frame(0, height=10))
    assert reading.error == "ValueError: input of 10 px"
    assert reading.predictions == 0
    reading = live.process(frame(0))
    assert (reading.error, reading.label, reading.predictions) == (None, "red", 1)


def test_reset_starts_a_new_stream_fresh() -> None:
    live = classifier()
    live.process(frame(2))
    live.reset()
    reading = live.reading()
    assert (reading.label, reading.frames, reading.probabilities) == (None, 0, ())
    assert live.latest_frame() is None
    assert live.process(frame(0)).label == "red"


# ---------------------------------------------------------------- bursts and saving


def test_a_burst_keeps_the_next_frames_spaced_in_time() -> None:
    clock = FakeClock()
    live = classifier(clock=clock)
    live.process(frame(0))  # before the burst: not kept
    live.start_burst(3, every_s=0.1)
    for index in range(8):
        image = frame(index % 3)
        image[0, 0, 0] = index  # mark each frame
        live.process(image)
        clock.now += 0.06  # frames 60 ms apart: every other one is kept
        if live.burst_progress()[0] == 3:
            break
    frames = live.take_burst()
    assert [int(f[0, 0, 0]) for f in frames] == [0, 2, 4]
    assert live.take_burst() is None
    assert live.burst_progress() == (0, 0)


def test_an_unfinished_burst_is_not_handed_over() -> None:
    live = classifier()
    live.start_burst(2, every_s=0.0)
    live.process(frame(0))
    assert live.burst_progress() == (1, 2)
    assert live.take_burst() is None


@pytest.mark.parametrize(("count", "every_s"), [(0, 0.1), (MAX_BURST + 1, 0.1), (3, -1.0)])
def test_a_burst_out_of_range_is_refused(count, every_s) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        classifier().start_burst(count, every_s=every_s)


def test_encode_jpeg_gives_a_photo_of_the_frame() -> None:
    data = encode_jpeg(frame(2, height=480, width=640))
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (640, 480), "RGB")
        r, g, b = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert b > 200 and r < 40 and g < 40


def test_encode_jpeg_refuses_what_is_not_an_rgb_frame() -> None:
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        encode_jpeg(np.zeros((4, 4), np.uint8))


# ---------------------------------------------------------------- a real model


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_run(tmp_path_factory.mktemp("live-run"), LABELS, 32)


def test_a_runs_litert_model_labels_camera_frames(colour_run: Path) -> None:
    predictor = Predictor.from_run(colour_run)
    assert predictor.runtime == "litert"
    live = LiveClassifier.from_predictor(predictor)
    for colour in (0, 0, 0, 0, 0):
        live.process(frame(colour, height=480, width=640))
    assert live.reading().label == "red"
    for _ in range(10):
        live.process(frame(2, height=480, width=640))
    reading = live.reading()
    assert reading.label == "blue" and reading.probability > 0.9


def test_the_stream_goes_on_when_the_model_is_deleted_meanwhile(colour_run: Path, tmp_path) -> None:
    copy = Path(shutil.copytree(colour_run, tmp_path / "run"))
    live = LiveClassifier.from_predictor(Predictor.from_run(copy))
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            live.process(frame(1, height=120, width=160))

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        wait_for(lambda: live.reading().predictions >= 3, timeout=30, what="first predictions")
        shutil.rmtree(copy)  # the run is deleted from the Runs page while the camera streams
        after = live.reading().predictions
        wait_for(lambda: live.reading().predictions >= after + 5, timeout=30, what="more predictions")
    finally:
        stop.set()
        worker.join(30)
    reading = live.reading()
    assert (reading.label, reading.error) == ("green", None)
