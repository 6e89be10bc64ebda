"""Loading a backbone on the fastest runtime that computes the same features.

`load_feature_runtime` converts the Keras extractor once to a float `.tflite`
with `tf.lite.TFLiteConverter`, caches it, and runs it on LiteRT; a process
that finds the `.tflite` cached never imports TensorFlow.

A converted model is trusted only after its features match the Keras ones on
the bundled photos (max abs difference below `PARITY_TOLERANCE`). The verdict
is stored beside the `.tflite` so later loads skip the check. A backbone that
fails to convert or to match runs on TensorFlow, and `.notice` says why.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import fsutil, paths
from engine.core.errors import StudioError, require_room
from engine.models.networks import build_feature_extractor, build_imagenet_classifier
from engine.models.registry import Backbone, check_weights_choice, get_backbone
from engine.models.runtime import (
    RUNTIMES,
    FeatureRuntime,
    LiteRTFeatureRuntime,
    TensorFlowFeatureRuntime,
    feature_layout,
)

PARITY_TOLERANCE = 1e-4
PARITY_IMAGES_DIR = Path(__file__).resolve().parent / "assets" / "parity"
_RUNTIME_FORMAT_VERSION = 1

Converter = Callable[[Any], bytes]


def convert_to_tflite(model: Any) -> bytes:
    """Convert a Keras model to a float TFLite flatbuffer.

    Args:
        model: the Keras model.

    Returns:
        The `.tflite` bytes.
    """
    import tensorflow as tf

    # The converter first writes the model as a SavedModel under the temporary folder; if
    # that fails (a full disk) it falls back to a path that dies with a TypeError on Keras 3.
    require_room(tempfile.gettempdir(), 2 * 4 * model.count_params(), what="converting to TFLite")
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
    from engine.data.images import load_image

    files = sorted(PARITY_IMAGES_DIR.glob("*.jpg"))
    return np.stack([backbone.prepare(load_image(p), input_size) for p in files])


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
    key = backbone.weights.key(input_size, top=kind == "imagenet")
    suffix = "" if kind == "features" else f"-{kind}"
    name = f"{backbone.name}-{input_size}-{key}{suffix}-r{_RUNTIME_FORMAT_VERSION}.tflite"
    return paths.backbone_file(name)


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
    size = backbone.resolve_size(input_size)
    if prefer not in RUNTIMES:
        raise StudioError(f"runtime={prefer!r} is unknown; choose one of {', '.join(RUNTIMES)}")
    check_weights_choice(weights)
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
