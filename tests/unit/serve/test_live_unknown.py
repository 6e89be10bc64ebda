"""engine.serve.live: the live label says unknown only after a few frames in a row, and leaves it so."""

from __future__ import annotations

import numpy as np
import pytest

from engine.serve.live import LiveClassifier, UnknownGate

THRESHOLD = 1.0


def test_the_gate_needs_frames_in_a_row_to_enter_and_to_leave() -> None:
    gate = UnknownGate(THRESHOLD, frames=3)
    scores = [2, 2, 0, 2, 2, 2, 0, 2, 0, 0, 0]
    states = [gate.update(s) for s in scores]
    assert states == [False, False, False, False, False, True, True, True, True, True, False]


def test_the_gate_refuses_zero_frames() -> None:
    with pytest.raises(ValueError, match="frames=0"):
        UnknownGate(THRESHOLD, frames=0)


def _live(scores: list[float], **kwargs) -> LiveClassifier:
    queue = iter(scores)

    def score(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray([[0.7, 0.3]]), np.asarray([next(queue)])

    return LiveClassifier(
        labels=["cat", "dog"], predict=lambda b: np.asarray([[0.7, 0.3]]), prepare=lambda f: f,
        score=score, threshold=THRESHOLD, **kwargs,
    )  # fmt: skip


def test_a_stream_of_strange_frames_becomes_unknown_and_one_odd_frame_does_not_flicker() -> None:
    frames = [2.0, 2.0, 2.0, 0.5, 2.0, 0.5, 0.5, 0.5]
    live = _live(frames, unknown_frames=3)
    frame = np.zeros((4, 4, 3), np.uint8)
    shown = [live.process(frame).shown for _ in frames]
    assert shown == ["cat", "cat", "unknown", "unknown", "unknown", "unknown", "unknown", "cat"]
    reading = live.reading()
    assert reading.label == "cat" and reading.unknown_score == 0.5


def test_reset_starts_a_new_stream_known() -> None:
    live = _live([2.0, 2.0], unknown_frames=1)
    frame = np.zeros((4, 4, 3), np.uint8)
    assert live.process(frame).unknown
    live.reset()
    assert live.process(frame).unknown  # one strange frame is enough with unknown_frames=1
    live.reset()
    assert live.reading().unknown is False


def test_without_a_rule_the_label_is_never_unknown() -> None:
    live = LiveClassifier(labels=["cat", "dog"], predict=lambda b: np.asarray([[0.5, 0.5]]),
                          prepare=lambda f: f)  # fmt: skip
    reading = live.process(np.zeros((4, 4, 3), np.uint8))
    assert (reading.unknown, reading.unknown_score, reading.shown) == (False, None, "cat")


def test_score_and_threshold_come_together() -> None:
    with pytest.raises(ValueError, match="together"):
        LiveClassifier(labels=["a"], predict=lambda b: b, prepare=lambda f: f, threshold=1.0)
