"""Feature runtimes: a backbone's frozen feature extractor behind one interface.

A `FeatureRuntime`'s `.features(batch)` maps uint8 images `(N, S, S, 3)` (made
by `Backbone.prepare`) to float32 features `(N, F)`. Two implementations:

- `LiteRTFeatureRuntime`: a float `.tflite` run by `ai_edge_litert` (XNNPACK).
  About twice as fast as TensorFlow here, and it never imports TensorFlow.
- `TensorFlowFeatureRuntime`: a Keras model behind a `tf.function`
  (`model.predict` is ~4x slower on single images; XLA on CPU slower still).

`engine.models.loading` chooses between them for a backbone.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from engine.models.registry import Backbone

RUNTIMES = ("litert", "tensorflow")
# Below this many images per interpreter, splitting a batch costs more than it gains.
_MIN_CHUNK = 4


class FeatureRuntime:
    """Features of prepared images from one backbone, on one runtime.

    Attributes:
        runtime: "litert" or "tensorflow".
        backbone: the `Backbone`.
        input_size: the square input side the runtime takes.
        feature_size: length of each feature vector.
        notice: why this is not the preferred runtime, or None.
    """

    runtime: str = ""

    def __init__(self, backbone: Backbone, input_size: int, *, notice: str | None = None) -> None:
        self.backbone = backbone
        self.input_size = input_size
        self.feature_size = backbone.feature_size
        self.notice = notice

    def _set_output_size(self, size: int) -> None:
        self.feature_size = size

    def features(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Features of a batch of prepared images.

        Args:
            batch_uint8: uint8 `(N, S, S, 3)` with S = `input_size`.

        Returns:
            float32 `(N, feature_size)`.

        Raises:
            ValueError: the batch has the wrong shape or dtype.
        """
        batch = self._check(batch_uint8)
        if batch.shape[0] == 0:
            return np.zeros((0, self.feature_size), np.float32)
        return np.asarray(self._run(batch), dtype=np.float32)

    def _check(self, batch: Any) -> np.ndarray:
        array = np.asarray(batch)
        expected = (self.input_size, self.input_size, 3)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != expected:
            raise ValueError(
                f"batch has shape {array.shape} and dtype {array.dtype}; "
                f"expected uint8 (N, {', '.join(map(str, expected))})"
            )
        return np.ascontiguousarray(array)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backbone.name!r}, input_size={self.input_size})"


class TensorFlowFeatureRuntime(FeatureRuntime):
    """The Keras extractor behind a `tf.function`.

    Args:
        backbone: the `Backbone`.
        input_size: the input side.
        model: the Keras feature extractor.
        notice: why TensorFlow is used instead of LiteRT. Defaults to None.
    """

    runtime = "tensorflow"

    def __init__(
        self, backbone: Backbone, input_size: int, model: Any, *, notice: str | None = None
    ) -> None:
        import tensorflow as tf

        super().__init__(backbone, input_size, notice=notice)
        self.model = model
        self._set_output_size(int(model.output.shape[-1]))
        spec = tf.TensorSpec((None, input_size, input_size, 3), tf.uint8)
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            # Keras notes the unnamed input on first trace; the signature fixes the structure.
            warnings.simplefilter("ignore", UserWarning)
            return self._call(batch).numpy()


class LiteRTFeatureRuntime(FeatureRuntime):
    """A float `.tflite` feature extractor run by LiteRT (XNNPACK).

    With `instances` above 1, several threads may call `features` at once,
    each on an interpreter of its own (created on first need), and a lone
    call splits its batch across the idle ones. On a small machine, one
    single-threaded interpreter per core, each on its own batch, beats one
    interpreter with a thread per core while images are decoded on the same
    cores: XNNPACK's threads wait for each other after every operator, and a
    decode thread holding a core stalls them all (see bench/bench_fast_path.py
    --sweep for the figures).

    Args:
        backbone: the `Backbone`.
        input_size: the input side.
        model_path: the `.tflite` file; or None with `model_content`.
        model_content: the `.tflite` bytes. Defaults to None.
        num_threads: threads per interpreter. Defaults to `os.cpu_count()`.
        instances: interpreters a batch may be split across. Defaults to 1.
        notice: a note to pass on. Defaults to None.

    Raises:
        ValueError: `num_threads` or `instances` below 1.
    """

    runtime = "litert"

    def __init__(
        self,
        backbone: Backbone,
        input_size: int,
        model_path: str | os.PathLike[str] | None = None,
        *,
        model_content: bytes | None = None,
        num_threads: int | None = None,
        instances: int = 1,
        notice: str | None = None,
    ) -> None:
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads={num_threads!r} is not allowed; use 1 or more")
        if instances < 1:
            raise ValueError(f"instances={instances!r} is not allowed; use 1 or more")
        super().__init__(backbone, input_size, notice=notice)
        self.model_path = Path(model_path) if model_path is not None else None
        self.source_model: Any = None
        self.num_threads = num_threads or os.cpu_count() or 1
        self.concurrency = instances
        self._model_content = model_content
        self._idle: queue.SimpleQueue[_Interpreter] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._helpers: ThreadPoolExecutor | None = None
        self._active = 0
        # One interpreter up front: a bad file fails here, and the output size is known.
        first = _Interpreter(self.model_path, model_content, self.num_threads)
        self._created = 1
        self._set_output_size(first.output_size)
        self._idle.put(first)

    def model_bytes(self) -> bytes:
        """The `.tflite` this runtime runs, as bytes (to build the same runtime elsewhere)."""
        if self._model_content is not None:
            return bytes(self._model_content)
        assert self.model_path is not None
        return self.model_path.read_bytes()

    def _borrow(self, *, wait: bool) -> _Interpreter | None:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            room = self._created < self.concurrency
            if room:
                self._created += 1
        if room:
            return _Interpreter(self.model_path, self._model_content, self.num_threads)
        return self._idle.get() if wait else None

    def _helper_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(
                    max_workers=max(1, self.concurrency - 1), thread_name_prefix="litert"
                )
            return self._helpers

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self._active += 1
            alone = self._active == 1
        own = self._borrow(wait=True)
        assert own is not None
        helpers: list[_Interpreter] = []
        try:
            # A lone caller gets every idle interpreter; callers running side by side
            # (extract_bottlenecks) keep one each, so no batch waits on another's half.
            while (
                alone
                and len(helpers) + 1 < self.concurrency
                and len(batch) >= (len(helpers) + 2) * _MIN_CHUNK
                and (helper := self._borrow(wait=False)) is not None
            ):
                helpers.append(helper)
            if not helpers:
                return own.run(batch)
            chunks = np.array_split(batch, len(helpers) + 1)
            pool = self._helper_pool()
            futures = [
                pool.submit(helper.run, np.ascontiguousarray(chunk))
                for helper, chunk in zip(helpers, chunks[1:], strict=True)
            ]
            first = own.run(np.ascontiguousarray(chunks[0]))
            return np.concatenate([first, *(future.result() for future in futures)])
        finally:
            for interpreter in (own, *helpers):
                self._idle.put(interpreter)
            with self._lock:
                self._active -= 1


class _Interpreter:
    """One LiteRT interpreter sized for the last batch it ran; used by one thread at a time."""

    def __init__(self, model_path: Path | None, model_content: bytes | None, num_threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(
            model_path=str(model_path) if model_path is not None else None,
            model_content=model_content,
            num_threads=num_threads,
        )
        self._input_index = self._interpreter.get_input_details()[0]["index"]
        output = self._interpreter.get_output_details()[0]
        self._output_index = output["index"]
        self.output_size = int(output["shape"][-1])
        self._batch = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input_index, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        self._interpreter.set_tensor(self._input_index, batch)
        self._interpreter.invoke()  # releases the GIL: decoding goes on meanwhile
        # get_tensor copies, so the next run cannot overwrite what the caller holds.
        return self._interpreter.get_tensor(self._output_index)


def feature_layout(cores: int | None = None) -> dict[str, int]:
    """How a LiteRT feature extractor spreads over the cores: interpreters x threads each.

    Two interpreters run batches side by side; the cores are shared out
    between them (2 cores: 2 x 1 thread; 8 cores: 2 x 4). More interpreters
    would each hold a batch's activations (about 150 MB at 224 px, batch 32).

    Args:
        cores: the cores to use. Defaults to `os.cpu_count()`.

    Returns:
        `{"instances": ..., "num_threads": ...}` for `LiteRTFeatureRuntime`.
    """
    cores = max(1, cores or os.cpu_count() or 1)
    instances = min(cores, 2)
    return {"instances": instances, "num_threads": max(1, cores // instances)}
