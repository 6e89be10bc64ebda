"""Live predictions on a camera's frames: the frame logic behind the Predict page's live mode.

A `LiveClassifier` is called by a video worker thread with every frame the
camera delivers (an RGB array, 640x480 or whatever the browser sends). It
predicts at most one frame at a time: a frame that arrives while a
prediction is running is counted as dropped, never queued, so the label
never lags behind the camera. The probabilities are smoothed over frames (an
exponential moving average) and the shown label changes only when another
class leads the shown one by a margin (hysteresis), so it does not flicker
between two close classes. With the run's unknown rule (`engine.serve.unknown`)
the reading says `unknown` once the rule has rejected `unknown_frames` frames
in a row, and leaves it only after as many frames in a row it accepts (an
`UnknownGate`), so a frame or two at the edge of the threshold does not
flicker the label.

Several threads may call `process` at once (a browser reconnecting starts a
new worker before the old one ends); every field they share is guarded by
one lock, and the model is called under its own lock (a LiteRT interpreter
is not thread-safe). The script thread reads `reading()`, `latest_frame()`
and the burst from the same object. Nothing here knows about Streamlit or
WebRTC: the UI turns a video frame into an array and back.
"""

from __future__ import annotations

import collections
import io
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.data.geometry import prepare_image
from engine.serve.unknown import UNKNOWN_LABEL

# EMA weight of the newest frame: at 10-15 predictions/s the label settles in about half a second.
DEFAULT_ALPHA = 0.3
# Another class must lead the shown one by this much (smoothed probability) to replace it.
DEFAULT_MARGIN = 0.1
RATE_WINDOW_S = 3.0
MIN_RATE_SPAN_S = 0.5
MAX_BURST = 50
# Frames in a row the unknown rule must reject (or accept) to enter (or leave) `unknown`:
# about a quarter of a second at 10-15 predictions/s.
DEFAULT_UNKNOWN_FRAMES = 3


@dataclass(frozen=True)
class LiveReading:
    """What the live view shows, read at one moment.

    Attributes:
        labels: the class names, in the model's output order.
        label: the shown label (smoothed, with hysteresis); None before the first prediction.
        probability: the shown label's smoothed probability (0.0 before the first prediction).
        probabilities: every class's smoothed probability, in label order (empty before the first).
        frames: frames received.
        predictions: frames predicted.
        dropped: frames skipped because a prediction was still running.
        rate: predictions per second over the last few seconds.
        latency_ms: capture to label for the last prediction, in milliseconds.
        error: why the last frame could not be predicted, or None.
        unknown: whether the shown answer is `unknown` (none of the classes; `label` is then
            the nearest class).
        unknown_score: the last frame's unknown score, or None without a rule.
    """

    labels: tuple[str, ...]
    label: str | None = None
    probability: float = 0.0
    probabilities: tuple[float, ...] = ()
    frames: int = 0
    predictions: int = 0
    dropped: int = 0
    rate: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None
    unknown: bool = False
    unknown_score: float | None = None

    @property
    def shown(self) -> str | None:
        """What to show: "unknown" when the gate says so, else the label."""
        return UNKNOWN_LABEL if self.unknown and self.label is not None else self.label

    def top(self, k: int) -> list[tuple[str, float]]:
        """The `k` most probable `(label, smoothed probability)` pairs, best first."""
        order = np.argsort(-np.asarray(self.probabilities))[:k] if self.probabilities else []
        return [(self.labels[i], float(self.probabilities[i])) for i in order]


class Smoother:
    """An exponential moving average of class probabilities, with a sticky top label.

    Args:
        classes: how many classes.
        alpha: the newest frame's weight, in (0, 1]. Defaults to `DEFAULT_ALPHA`.
        margin: how far another class must lead the shown one to replace it,
            in [0, 1). Defaults to `DEFAULT_MARGIN`.

    Raises:
        ValueError: `classes`, `alpha` or `margin` out of range.
    """

    def __init__(self, classes: int, *, alpha: float = DEFAULT_ALPHA, margin: float = DEFAULT_MARGIN):
        if classes < 1:
            raise ValueError(f"classes={classes!r} is not allowed; a model has 1 class or more")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha={alpha!r} is not allowed; use a value in (0, 1]")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin={margin!r} is not allowed; use a value in [0, 1)")
        self.alpha, self.margin = alpha, margin
        self.probabilities = np.zeros(classes, np.float64)
        self.shown: int | None = None

    def update(self, probabilities: np.ndarray) -> int:
        """Blend in one frame's probabilities.

        Args:
            probabilities: the model's output for one frame, `(classes,)`.

        Returns:
            The index of the label to show.

        Raises:
            ValueError: a vector of the wrong length.
        """
        values = np.asarray(probabilities, np.float64).reshape(-1)
        if values.shape != self.probabilities.shape:
            raise ValueError(
                f"got {values.size} probabilities for a model of {self.probabilities.size} classes"
            )
        if self.shown is None:
            self.probabilities = values.copy()
        else:
            self.probabilities = self.alpha * values + (1.0 - self.alpha) * self.probabilities
        best = int(np.argmax(self.probabilities))
        if self.shown is None or (
            self.probabilities[best] - self.probabilities[self.shown] > self.margin
        ):
            self.shown = best
        return self.shown


class UnknownGate:
    """A sticky unknown flag: it changes only after `frames` frames in a row say otherwise.

    Args:
        threshold: a score above it is a rejected frame.
        frames: frames in a row needed to enter or leave `unknown`, 1 or more.
            Defaults to `DEFAULT_UNKNOWN_FRAMES`.

    Raises:
        ValueError: `frames` below 1.
    """

    def __init__(self, threshold: float, *, frames: int = DEFAULT_UNKNOWN_FRAMES) -> None:
        if frames < 1:
            raise ValueError(f"frames={frames!r} is not allowed; use 1 or more")
        self.threshold, self.frames = float(threshold), frames
        self.unknown = False
        self._streak = 0  # frames in a row that disagree with the current state

    def update(self, score: float) -> bool:
        """Take one frame's score; return whether the answer is now `unknown`."""
        if (score > self.threshold) != self.unknown:
            self._streak += 1
            if self._streak >= self.frames:
                self.unknown, self._streak = not self.unknown, 0
        else:
            self._streak = 0
        return self.unknown


class LiveClassifier:
    """Predicts camera frames one at a time, drops the frames that arrive meanwhile, smooths the label.

    Build it with `from_predictor` for a run's model; the collaborators are
    keyword arguments so tests can give a model of their own.

    Args:
        labels: the class names, in the model's output order.
        predict: uint8 `(1, S, S, 3)` -> `(1, classes)` probabilities.
        prepare: an RGB frame `(H, W, 3)` uint8 -> the model's input `(S, S, 3)`.
        alpha: see `Smoother`. Defaults to `DEFAULT_ALPHA`.
        margin: see `Smoother`. Defaults to `DEFAULT_MARGIN`.
        clock: seconds, monotonic. Defaults to `time.monotonic`.
        score: uint8 `(1, S, S, 3)` -> `((1, classes) probabilities, (1,) unknown scores)`,
            used instead of `predict` when given. Defaults to None (no unknown answer).
        threshold: the unknown rule's threshold (with `score`). Defaults to None.
        unknown_frames: see `UnknownGate`. Defaults to `DEFAULT_UNKNOWN_FRAMES`.
    """

    def __init__(
        self,
        *,
        labels: Sequence[str],
        predict: Callable[[np.ndarray], np.ndarray],
        prepare: Callable[[np.ndarray], np.ndarray],
        alpha: float = DEFAULT_ALPHA,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]] | None = None,
        threshold: float | None = None,
        unknown_frames: int = DEFAULT_UNKNOWN_FRAMES,
    ) -> None:
        if (score is None) != (threshold is None):
            raise ValueError("give score and threshold together (or neither)")
        self.labels = tuple(labels)
        self._predict, self._prepare, self._clock = predict, prepare, clock
        self._score, self._threshold, self._unknown_frames = score, threshold, unknown_frames
        self._gate = None if threshold is None else UnknownGate(threshold, frames=unknown_frames)
        self._unknown_score: float | None = None
        self._alpha, self._margin = alpha, margin
        self._model_lock = threading.Lock()  # one prediction at a time; others drop their frame
        self._lock = threading.Lock()  # guards everything below
        self._smoother = Smoother(len(self.labels), alpha=alpha, margin=margin)
        self._frames = self._predictions = self._dropped = 0
        self._latency_s = 0.0
        self._error: str | None = None
        self._times: collections.deque[float] = collections.deque()
        self._latest: np.ndarray | None = None
        self._burst: list[np.ndarray] = []
        self._burst_wanted = 0
        self._burst_every_s = 0.0
        self._burst_last = float("-inf")

    @classmethod
    def from_predictor(
        cls, predictor: object, *, unknown: bool = True, **kwargs: object
    ) -> LiveClassifier:
        """A live classifier on a loaded `engine.serve.inference.Predictor`.

        Give it a predictor of its own: the live worker calls the model from
        another thread than the page's.

        Args:
            predictor: the loaded predictor (its labels, input size and training-time geometry).
            unknown: answer `unknown` when the predictor has a rule (`Predictor.rule`).
                Defaults to True.
            **kwargs: `alpha`, `margin`, `clock`, `unknown_frames`.

        Returns:
            The classifier.
        """
        size, crop, resample = predictor.input_size, predictor.crop_fraction, predictor.resample

        def prepare(frame: np.ndarray) -> np.ndarray:
            return prepare_image(Image.fromarray(frame), size, crop_fraction=crop, resample=resample)

        rule = predictor.rule if unknown else None
        if rule is not None:
            kwargs.update(score=predictor.score_arrays, threshold=rule.threshold)
        return cls(labels=predictor.labels, predict=predictor.predict_arrays, prepare=prepare, **kwargs)

    def process(self, frame: np.ndarray, *, captured_at: float | None = None) -> LiveReading:
        """Take one camera frame: keep it, predict it unless a prediction is running, smooth.

        Never raises for a frame the model cannot take: the reason is kept in
        `reading().error` and the stream goes on.

        Args:
            frame: RGB uint8 `(H, W, 3)`; kept as the latest frame, so do not change it afterwards.
            captured_at: when the frame was captured, on `clock`. Defaults to now.

        Returns:
            The reading after this frame.
        """
        captured_at = self._clock() if captured_at is None else captured_at
        with self._lock:
            self._frames += 1
            self._latest = frame
            if (
                len(self._burst) < self._burst_wanted
                and captured_at - self._burst_last >= self._burst_every_s
            ):
                self._burst.append(frame)
                self._burst_last = captured_at
        if not self._model_lock.acquire(blocking=False):
            with self._lock:
                self._dropped += 1
            return self.reading()
        try:
            prepared = self._prepare(frame)[None]
            scores = None
            if self._score is not None:
                outputs, scores = self._score(prepared)
                probabilities = np.asarray(outputs)[0]
            else:
                probabilities = np.asarray(self._predict(prepared))[0]
            with self._lock:
                self._smoother.update(probabilities)
                if self._gate is not None and scores is not None:
                    self._unknown_score = float(np.asarray(scores)[0])
                    self._gate.update(self._unknown_score)
                now = self._clock()
                self._predictions += 1
                self._latency_s = now - captured_at
                self._times.append(now)
                self._error = None
        except Exception as exc:  # noqa: BLE001 - a bad frame or a broken model must not end the stream
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._model_lock.release()
        return self.reading()

    def reading(self) -> LiveReading:
        """The current reading (safe from any thread)."""
        with self._lock:
            now = self._clock()
            while self._times and now - self._times[0] > RATE_WINDOW_S:
                self._times.popleft()
            # over at least MIN_RATE_SPAN_S: a few frames decoded back to back are not a rate
            span = now - self._times[0] if len(self._times) > 1 else 0.0
            rate = (len(self._times) - 1) / span if span >= MIN_RATE_SPAN_S else 0.0
            shown = self._smoother.shown
            probabilities = self._smoother.probabilities
            return LiveReading(
                labels=self.labels,
                label=None if shown is None else self.labels[shown],
                probability=0.0 if shown is None else float(probabilities[shown]),
                probabilities=() if shown is None else tuple(float(p) for p in probabilities),
                frames=self._frames,
                predictions=self._predictions,
                dropped=self._dropped,
                rate=rate,
                latency_ms=self._latency_s * 1000.0,
                error=self._error,
                unknown=shown is not None and self._gate is not None and self._gate.unknown,
                unknown_score=self._unknown_score,
            )

    def latest_frame(self) -> np.ndarray | None:
        """The newest frame received (RGB uint8), or None before the first."""
        with self._lock:
            return self._latest

    def start_burst(self, count: int, *, every_s: float = 0.1) -> None:
        """Collect the next `count` frames, at least `every_s` apart (a burst to save).

        Args:
            count: how many frames, 1 to `MAX_BURST`.
            every_s: the least time between two kept frames. Defaults to 0.1.

        Raises:
            ValueError: `count` or `every_s` out of range.
        """
        if not 1 <= count <= MAX_BURST:
            raise ValueError(f"count={count!r} is not allowed; a burst holds 1 to {MAX_BURST} frames")
        if every_s < 0:
            raise ValueError(f"every_s={every_s!r} is not allowed; use 0 or more seconds")
        with self._lock:
            self._burst, self._burst_wanted = [], count
            self._burst_every_s, self._burst_last = every_s, float("-inf")

    def burst_progress(self) -> tuple[int, int]:
        """`(frames collected, frames wanted)` of the current burst ((0, 0) when there is none)."""
        with self._lock:
            return len(self._burst), self._burst_wanted

    def take_burst(self) -> list[np.ndarray] | None:
        """The burst's frames once all are collected (and forget them), else None."""
        with self._lock:
            if self._burst_wanted == 0 or len(self._burst) < self._burst_wanted:
                return None
            frames, self._burst, self._burst_wanted = self._burst, [], 0
            return frames

    def reset(self) -> None:
        """Forget the smoothed label and the counters (a new stream starts fresh)."""
        with self._lock:
            self._smoother = Smoother(len(self.labels), alpha=self._alpha, margin=self._margin)
            if self._threshold is not None:
                self._gate = UnknownGate(self._threshold, frames=self._unknown_frames)
            self._unknown_score = None
            self._frames = self._predictions = self._dropped = 0
            self._latency_s, self._error, self._latest = 0.0, None, None
            self._times.clear()


def encode_jpeg(frame: np.ndarray, *, quality: int = 92) -> bytes:
    """A camera frame as JPEG bytes, to add to a dataset.

    Args:
        frame: RGB uint8 `(H, W, 3)`.
        quality: JPEG quality, 1 to 95. Defaults to 92.

    Returns:
        The JPEG file's bytes.

    Raises:
        ValueError: not an RGB uint8 image.
    """
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"a frame of shape {array.shape} and type {array.dtype} is not an RGB uint8 image"
        )
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
