"""Feature runtimes: a backbone's frozen feature extractor behind one interface.

`load_feature_runtime` gives a `FeatureRuntime` whose `.features(batch)` maps
uint8 images `(N, S, S, 3)` (made by `Backbone.prepare`) to float32 features
`(N, F)`. Two implementations:

- `LiteRTFeatureRuntime`: the extractor converted once to a float `.tflite`
  with `tf.lite.TFLiteConverter`, cached beside the converted Keras weights,
  run by `ai_edge_litert` (XNNPACK, one thread per core). About twice as fast
  as TensorFlow here, and a process that finds the `.tflite` cached never
  imports TensorFlow.
- `TensorFlowFeatureRuntime`: the Keras model behind a `tf.function`
  (`model.predict` is ~4x slower on single images; XLA on CPU slower still).

A converted model is trusted only after its features match the Keras ones on
the bundled photos (max abs difference below `PARITY_TOLERANCE`). The verdict
is stored beside the `.tflite` so later loads skip the check. A backbone that
fails to convert or to match runs on TensorFlow, and `.notice` says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import queue
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from engine import _lite0, fsutil, paths
from engine.backbones import (
    Backbone,
    _keras_weights_file,
    build_feature_extractor,
    build_imagenet_classifier,
    get_backbone,
)
from engine.errors import StudioError

RUNTIMES = ("litert", "tensorflow")
# Below this many images per interpreter, splitting a batch costs more than it gains.
_MIN_CHUNK = 4
PARITY_TOLERANCE = 1e-4
PARITY_IMAGES_DIR = Path(__file__).resolve().parent / "data" / "parity"
_RUNTIME_FORMAT_VERSION = 1

Converter = Callable[[Any], bytes]


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


def convert_to_tflite(model: Any) -> bytes:
    """Convert a Keras model to a float TFLite flatbuffer.

    Args:
        model: the Keras model.

    Returns:
        The `.tflite` bytes.
    """
    import tensorflow as tf

    # The converter prints its whole trace (one line per captured variable) to stdout,
    # which is where CLI results go.
    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def parity_batch(backbone: Backbone, input_size: int) -> np.ndarray:
    """The bundled photos, prepared for `backbone`: what converted models are checked on.

    Args:
        backbone: the `Backbone`.
        input_size: the side.

    Returns:
        uint8 `(n, input_size, input_size, 3)`.
    """
    from engine import images

    files = sorted(PARITY_IMAGES_DIR.glob("*.jpg"))
    return np.stack([backbone.prepare(images.load_image(p), input_size) for p in files])


def _weights_key(backbone: Backbone, input_size: int, *, top: bool = False) -> str:
    """What identifies the weights, without importing TensorFlow when they are local."""
    if backbone.family == "efficientnet_lite":
        source = _lite0.checkpoint_path()
        if source is None or not source.is_file():
            raise StudioError(f"{backbone.name}: {backbone.weights_hint()}")
        return _lite0.cached_weights_path(source).name.split(".")[0].removeprefix(f"{backbone.name}-")
    digest = hashlib.sha256()
    with _keras_weights_file(backbone, input_size, top=top).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def tflite_cache_path(backbone: Backbone, input_size: int, *, kind: str = "features") -> Path:
    """Where the converted `.tflite` of a backbone's ImageNet extractor (or classifier) is cached.

    Args:
        backbone: the `Backbone`.
        input_size: the side.
        kind: "features" (the extractor) or "imagenet" (the 1000-class classifier).
            Defaults to "features".

    Returns:
        `cache_dir()/backbones/<name>-<size>-<weights key>-r<version>.tflite`;
        the parity verdict sits beside it with `.json` appended.
    """
    key = _weights_key(backbone, input_size, top=kind == "imagenet")
    suffix = "" if kind == "features" else f"-{kind}"
    name = f"{backbone.name}-{input_size}-{key}{suffix}-r{_RUNTIME_FORMAT_VERSION}.tflite"
    return paths.cache_dir() / "backbones" / name


def _verdict_path(tflite_path: Path) -> Path:
    return tflite_path.with_name(tflite_path.name + ".json")


def _read_verdict(path: Path) -> dict[str, Any] | None:
    try:
        verdict = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return verdict if isinstance(verdict, dict) and isinstance(verdict.get("ok"), bool) else None


def _check_parity(
    model: Any, backbone: Backbone, input_size: int, *, model_content: bytes
) -> tuple[LiteRTFeatureRuntime | None, dict[str, Any]]:
    batch = parity_batch(backbone, input_size)
    expected = TensorFlowFeatureRuntime(backbone, input_size, model).features(batch)
    lite = LiteRTFeatureRuntime(backbone, input_size, model_content=model_content)
    got = lite.features(batch)
    diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
    verdict = {
        "ok": diff < PARITY_TOLERANCE,
        "max_abs_diff": diff,
        "tolerance": PARITY_TOLERANCE,
        "images": len(batch),
        "max_abs_feature": float(np.max(np.abs(expected))),
    }
    return (lite if verdict["ok"] else None), verdict


def _fallback_notice(backbone: Backbone, verdict: dict[str, Any]) -> str:
    if "error" in verdict:
        why = f"conversion to LiteRT failed ({verdict['error']})"
    else:
        why = (
            f"LiteRT features differ from Keras by {verdict['max_abs_diff']:.2g} "
            f"(limit {verdict['tolerance']:.0e})"
        )
    return f"{backbone.name} runs on TensorFlow: {why}."


def load_feature_runtime(
    name: str,
    *,
    input_size: int | None = None,
    prefer: str = "litert",
    weights: str | None = "imagenet",
    converter: Converter | None = None,
) -> FeatureRuntime:
    """A backbone's feature extractor on LiteRT when it converts faithfully, else TensorFlow.

    The first LiteRT load of a backbone converts and checks it (seconds); the
    result and the verdict are cached, so later loads only open the file.

    Args:
        name: a registry name.
        input_size: the input side. Defaults to the backbone's `input_size`.
        prefer: "litert" or "tensorflow". Defaults to "litert".
        weights: "imagenet", or None for random weights (tests; converted in
            memory, never cached). Defaults to "imagenet".
        converter: turns the Keras extractor into `.tflite` bytes. Defaults to
            `convert_to_tflite`.

    Returns:
        A `FeatureRuntime`; `.notice` says why it is not LiteRT when LiteRT was preferred.

    Raises:
        StudioError: unknown name, size, runtime or weights, or weights unavailable.
    """
    return _load_runtime(name, input_size, prefer, weights, converter, kind="features")


def load_imagenet_runtime(
    name: str,
    *,
    input_size: int | None = None,
    prefer: str = "litert",
    converter: Converter | None = None,
) -> FeatureRuntime:
    """A backbone's own 1000-class ImageNet classifier on LiteRT or TensorFlow.

    Same rules as `load_feature_runtime`; `.features(batch)` returns the
    probabilities `(N, 1000)` in the order of `backbones.imagenet_labels()`.

    Args:
        name: a registry name.
        input_size: the input side. Defaults to the backbone's `input_size`.
        prefer: "litert" or "tensorflow". Defaults to "litert".
        converter: as in `load_feature_runtime`. Defaults to `convert_to_tflite`.

    Returns:
        A `FeatureRuntime` whose outputs are class probabilities.

    Raises:
        StudioError: as `load_feature_runtime`.
    """
    return _load_runtime(name, input_size, prefer, "imagenet", converter, kind="imagenet")


def _load_runtime(
    name: str,
    input_size: int | None,
    prefer: str,
    weights: str | None,
    converter: Converter | None,
    *,
    kind: str,
) -> FeatureRuntime:
    backbone = get_backbone(name)
    size = backbone._size(input_size)
    if prefer not in RUNTIMES:
        raise StudioError(f"runtime={prefer!r} is unknown; choose one of {', '.join(RUNTIMES)}")
    if weights not in ("imagenet", None):
        raise StudioError(f"weights={weights!r} is not allowed; choose 'imagenet' or None")
    convert = converter or convert_to_tflite
    builder = build_feature_extractor if kind == "features" else build_imagenet_classifier

    if prefer == "tensorflow":
        return TensorFlowFeatureRuntime(backbone, size, builder(name, input_size=size, weights=weights))

    # Features come in big batches (split across interpreters); ImageNet labels one photo at a time.
    layout = feature_layout() if kind == "features" else {}
    cached = tflite_cache_path(backbone, size, kind=kind) if weights == "imagenet" else None
    if cached is not None:
        verdict = _read_verdict(_verdict_path(cached))
        if verdict is not None and verdict["ok"] and cached.is_file():
            return LiteRTFeatureRuntime(backbone, size, cached, **layout)
        if verdict is not None and not verdict["ok"]:
            model = builder(name, input_size=size, weights=weights)
            return TensorFlowFeatureRuntime(
                backbone, size, model, notice=_fallback_notice(backbone, verdict)
            )

    model = builder(name, input_size=size, weights=weights)
    lite: LiteRTFeatureRuntime | None = None
    content = b""
    try:
        content = convert(model)
        lite, verdict = _check_parity(model, backbone, size, model_content=content)
    except Exception as exc:  # noqa: BLE001 - any converter or interpreter failure means TensorFlow
        first_line = (str(exc).splitlines() or [""])[0][:160]
        verdict = {"ok": False, "error": f"{type(exc).__name__}: {first_line}"}
    # A conversion error is not recorded (the next process retries); a measured mismatch is.
    if cached is not None and "error" not in verdict:
        if verdict["ok"]:
            fsutil.atomic_write_bytes(cached, content)
        fsutil.atomic_write_json(_verdict_path(cached), verdict)
        if lite is not None:
            return LiteRTFeatureRuntime(backbone, size, cached, **layout)
    if lite is not None:
        lite.source_model = model  # uncached (random) weights: keep the twin for comparisons
        return lite
    return TensorFlowFeatureRuntime(backbone, size, model, notice=_fallback_notice(backbone, verdict))
