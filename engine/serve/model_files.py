"""The model files a training writes, and how to run each: LiteRT, onnxruntime or TensorFlow.

A classifier takes prepared uint8 images `(N, S, S, 3)` and gives class
probabilities `(N, classes)`. `LiteModel` runs a `.tflite` on LiteRT (no
TensorFlow); `OnnxModel` runs an `.onnx` on onnxruntime (no TensorFlow);
`KerasModel` runs a `.keras` file or a SavedModel folder. `load_model` picks
one for a path, by its content (`engine.serve.model_info`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import StudioError, disk_full_error
from engine.core.rundir import CONFIG_FILE, LABELS_FILE
from engine.serve.model_info import model_kind

_DEFAULT_GEOMETRY = {"crop_fraction": 1.0, "resample": "bilinear"}
# Where the TensorFlow for Poets codelab keeps its model and labels (retrain.py's flags there).
DEFAULT_GRAPH = "tf_files/retrained_graph.pb"
DEFAULT_LABELS = "tf_files/retrained_labels.txt"


class LiteModel:
    """A `.tflite` classifier run by LiteRT (no TensorFlow), one image per call.

    Quantized inputs and outputs (int8 exports) are converted from and to
    real values with the tensor's scale and zero point.

    Args:
        path: the `.tflite` file.
        num_threads: interpreter threads. Defaults to the CPU count.
    """

    runtime = "litert"

    def __init__(self, path: str | os.PathLike[str], *, num_threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(
                model_path=str(path), num_threads=num_threads or os.cpu_count() or 1
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise StudioError(
                f"{path} is not a usable .tflite model ({exc}); give a model file"
            ) from exc
        self._input = self._interpreter.get_input_details()[0]
        outputs = self._interpreter.get_output_details()
        self._output = outputs[0]
        # A run's assembled model gives the backbone's features as output 1 (engine.serve.assemble).
        second = outputs[1] if len(outputs) > 1 else None
        usable = second is not None and len(second["shape"]) == 2 and second["dtype"] == np.float32
        self._features = second if usable else None
        shape = self._input["shape"]
        self.input_size = int(shape[1])

    @property
    def feature_size(self) -> int | None:
        """How many features the model's second output gives, or None when it has none."""
        return None if self._features is None else int(self._features["shape"][-1])

    def with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities `(N, classes)` and features `(N, features)` (None when the model has none)."""
        if self._features is None:
            return self(batch), None
        pairs = [self._one(image, features=True) for image in batch]
        if not pairs:
            return np.zeros((0, 0), np.float32), np.zeros((0, self.feature_size or 0), np.float32)
        return np.stack([p for p, _ in pairs]), np.stack([f for _, f in pairs])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 `(N, S, S, 3)` batch, `(N, classes)` float32."""
        rows = [self._one(image) for image in batch]
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def _one(self, image: np.ndarray, *, features: bool = False) -> Any:
        spec = self._input
        x = image[None].astype(np.float32)
        scale, zero = spec.get("quantization", (0.0, 0))
        dtype = spec["dtype"]
        if dtype in (np.uint8, np.int8) and scale:
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self._interpreter.set_tensor(spec["index"], x.astype(dtype))
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output["index"])[0]
        scale, zero = self._output.get("quantization", (0.0, 0))
        if scale and out.dtype != np.float32:
            out = (out.astype(np.float32) - zero) * scale
        out = out.astype(np.float32)
        if not features:
            return out
        assert self._features is not None
        return out, self._interpreter.get_tensor(self._features["index"])[0].astype(np.float32)


class OnnxModel:
    """An `.onnx` classifier run by onnxruntime on the CPU (no TensorFlow).

    Args:
        path: the `.onnx` file.
        num_threads: threads inside an operator. Defaults to the CPU count.
    """

    runtime = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, num_threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or os.cpu_count() or 1
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            first = (str(exc).splitlines() or [""])[0][:200]
            raise StudioError(f"{path} is not a usable ONNX model ({first}); give a model file") from exc
        inputs = self._session.get_inputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or not isinstance(shape[1], int):
            raise StudioError(
                f"{path} is an ONNX model but not an image classifier of the studio's kind "
                "(one uint8 input of N x size x size x 3); export it with `python -m engine export`"
            )
        self._input = inputs[0].name
        self._output = self._session.get_outputs()[0].name
        self.input_size = int(shape[1])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 `(N, S, S, 3)` batch, `(N, classes)` float32."""
        array = np.ascontiguousarray(batch, dtype=np.uint8)
        return np.asarray(self._session.run([self._output], {self._input: array})[0], np.float32)


class KerasModel:
    """A `.keras` model (or a SavedModel folder) run by TensorFlow.

    Args:
        path: the `.keras` file or SavedModel folder.
    """

    runtime = "tensorflow"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import tensorflow as tf

        path = Path(path)
        if path.is_dir():
            loaded = tf.saved_model.load(str(path))
            self._loaded = loaded  # its variables die with it
            self._fn = loaded.serve
            signature = loaded.serve.concrete_functions[0].structured_input_signature
            self.input_size = int(signature[0][0].shape[1])
        else:
            model = _load_keras(path)
            self._fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
            self.input_size = int(model.input_shape[1])
        self._tf = tf

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 `(N, S, S, 3)` batch, `(N, classes)` float32."""
        return np.asarray(self._fn(self._tf.constant(batch, self._tf.uint8)), dtype=np.float32)


def _load_keras(path: Path) -> Any:
    """A `.keras` zip, whatever its file name (Keras insists on the `.keras` suffix)."""
    import keras

    try:
        if path.suffix == ".keras":
            return keras.saving.load_model(path, compile=False)
        with tempfile.TemporaryDirectory(prefix="retrain-studio-model-") as folder:
            alias = Path(folder) / "model.keras"
            alias.symlink_to(path.resolve())
            return keras.saving.load_model(alias, compile=False)
    except (ValueError, OSError) as exc:
        # Keras unpacks a large model into a temporary folder first: no room
        # there is a full disk, not a bad model.
        raise disk_full_error(exc) or StudioError(
            f"{path} is not a loadable Keras model ({exc})"
        ) from exc


def load_model(path: str | os.PathLike[str]) -> LiteModel | OnnxModel | KerasModel:
    """Load a classifier by what it is, whatever its name: TFLite, ONNX, Keras zip or SavedModel.

    Args:
        path: the model file or folder.

    Returns:
        A callable model (`LiteModel` on LiteRT for a `.tflite`, `OnnxModel` on onnxruntime
        for an `.onnx`, else `KerasModel`).

    Raises:
        StudioError: missing path, or not a model (`engine.serve.model_info.model_kind`).
    """
    path = Path(path)
    kind = model_kind(path)
    if kind == "tflite":
        return LiteModel(path)
    if kind == "onnx":
        return OnnxModel(path)
    return KerasModel(path)


def read_labels_file(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a labels file, one a line (blank lines ignored).

    Args:
        path: the labels file.

    Returns:
        The labels.

    Raises:
        StudioError: missing or empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"labels file {str(path)!r} does not exist; give the run's labels.txt")
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not labels:
        raise StudioError(f"labels file {str(path)!r} is empty; give the run's labels.txt")
    return labels


def labels_beside(graph: Path) -> Path:
    """A labels file for a model that carries none: beside it, its run's, or retrain.py's default."""
    candidates = [
        graph.parent / LABELS_FILE,
        graph.parent.parent / LABELS_FILE,
        Path(DEFAULT_LABELS),  # retrain.py's --output_labels in the codelab, from the working folder
    ]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise StudioError(
            f"no --labels given, {str(graph)!r} carries no labels, and there is no labels.txt beside "
            f"it nor a {DEFAULT_LABELS}; pass --labels"
        )
    return found


def geometry_near(model_path: Path) -> dict[str, Any]:
    """Preprocessing recorded in a config.json beside the model or in its run folder."""
    for folder in (model_path.parent, model_path.parent.parent, model_path):
        config = folder / CONFIG_FILE
        if config.is_file():
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if "crop_fraction" in data:
                return {"crop_fraction": data["crop_fraction"], "resample": data["resample"]}
    return dict(_DEFAULT_GEOMETRY)
