"""TensorBoard event files written without TensorFlow.

A run's logs must not cost a TensorFlow import (about 5 s here) when the run
itself needs none (the L-BFGS head on cached features). `EventWriter` writes
the same records `tf.summary` does, with TensorBoard's own protobufs and
summary helpers: scalars and histograms as tensor summaries (plugins
"scalars" and "histograms", as TensorFlow 2 writes them), images as a string
tensor `[width, height, png]` (plugin "images"), Markdown text and hparams.
Records are TFRecord-framed (length, masked CRC32C of the length, data,
masked CRC32C of the data), one event file per writer, flushed on `flush` and
`close`.
"""

from __future__ import annotations

import io
import itertools
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any, Self

import numpy as np

_FILE_VERSION = "brain.Event:2"
_uid = itertools.count()


def _masked_crc(data: bytes) -> int:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    return masked_crc32c(data)


class EventWriter:
    """One TensorBoard event file in `logdir` (created if missing).

    Args:
        logdir: the folder TensorBoard reads as a run (a run's `tb/train`, say).
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        from tensorboard.compat.proto import event_pb2

        self._event_pb2 = event_pb2
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_uid)}"
        self.path = self.logdir / name
        self._file = open(self.path, "wb")  # noqa: SIM115 - held until close()
        self._tags_described: set[str] = set()
        self._write(event_pb2.Event(wall_time=time.time(), file_version=_FILE_VERSION))
        self.flush()

    def _write(self, event: Any) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(
            header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data))
        )

    def add(self, summary: Any, step: int) -> None:
        """Write a `summary_pb2.Summary` at `step`."""
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def scalar(self, tag: str, value: float, step: int, description: str | None = None) -> None:
        """A scalar, as `tf.summary.scalar` writes it (a float32 tensor summary)."""
        from tensorboard.plugins.scalar import summary_v2

        self.add(summary_v2.scalar_pb(tag, np.float32(value), description=description), step)

    def histogram(self, tag: str, values: Any, step: int) -> None:
        """A histogram of `values` (30 buckets), as `tf.summary.histogram` writes it."""
        from tensorboard.plugins.histogram import summary_v2

        self.add(summary_v2.histogram_pb(tag, np.asarray(values, np.float64)), step)

    def image(self, tag: str, image: np.ndarray, step: int, description: str | None = None) -> None:
        """One RGB uint8 image `(H, W, 3)`, PNG-encoded, as `tf.summary.image` writes it."""
        from PIL import Image
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.image import metadata
        from tensorboard.util import tensor_util

        array = np.asarray(image, np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
        height, width = array.shape[:2]
        tensor = tensor_util.make_tensor_proto(
            [str(width).encode(), str(height).encode(), buffer.getvalue()], dtype=np.object_
        )
        summary = summary_pb2.Summary()
        summary.value.add(
            tag=tag,
            metadata=metadata.create_summary_metadata(tag, description or "", converted_to_tensor=True),
            tensor=tensor,
        )
        self.add(summary, step)

    def text(self, tag: str, markdown: str, step: int) -> None:
        """Markdown text, as `tf.summary.text` writes it."""
        from tensorboard.plugins.text import summary_v2

        self.add(summary_v2.text_pb(tag, markdown), step)

    def hparams(self, hparams: dict[str, Any], trial_id: str, step: int = 0) -> None:
        """A trial's hyperparameters for the HParams dashboard (`hp.hparams`)."""
        from tensorboard.plugins.hparams import summary_v2

        self.add(summary_v2.hparams_pb(hparams, trial_id=trial_id), step)

    def flush(self) -> None:
        """Put what was written on disk."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file (further writes fail)."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
