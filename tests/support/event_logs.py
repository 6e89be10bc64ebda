"""TensorBoard event files for tests: written by TensorFlow (TF2 summaries) or by TensorBoard's writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALAR_STEPS = 30  # more than EventAccumulator's default of 10 kept tensor points


def write_tf2_logs(logdir: Path) -> Path:
    """Train and validation runs in `logdir`: scalars at every step, histograms, an image, text."""
    import tensorflow as tf

    for run, offset in (("train", 0.0), ("validation", 0.1)):
        writer = tf.summary.create_file_writer(str(logdir / run))
        with writer.as_default():
            for step in range(SCALAR_STEPS):
                tf.summary.scalar("accuracy", offset + step / 100, step=step)
                tf.summary.scalar("cross_entropy", 1.0 - step / 100, step=step)
            if run == "train":
                for step in (0, 10, 20):
                    tf.summary.histogram("weights", np.arange(10.0) + step, step=step)
                tf.summary.image("samples", np.zeros((2, 8, 8, 3), dtype=np.float32), step=5)
                tf.summary.text("notes", "hello", step=0)
        writer.close()
    return logdir


def simple_value_event(tag: str, step: int, value: float):
    """A TF1-style scalar event (`simple_value`) at `step`, wall time 1000 + step."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return event_pb2.Event(step=step, wall_time=1000.0 + step, summary=summary)


def write_simple_values(folder: Path, values: dict[int, float], tag: str = "loss") -> Path:
    """One event file in `folder` with `values` (step -> value) under `tag`; returns the file."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for step, value in values.items():
        writer.add_event(simple_value_event(tag, step, value))
    writer.close()
    [path] = [p for p in folder.iterdir() if "tfevents" in p.name]
    return path


def tensor_tags(folder: Path) -> set[str]:
    """The tags TF2 summaries wrote into the event files of `folder` (scalars, images, text...)."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    accumulator = ea.EventAccumulator(str(folder), size_guidance={ea.TENSORS: 0})
    accumulator.Reload()
    return set(accumulator.Tags()["tensors"])
