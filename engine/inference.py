"""Answering a photo with a trained run: label_image.py, loaded once.

A `Predictor` holds one loaded model (a float `.tflite` run by LiteRT when the
run was exported, else the run's `model.keras`), its labels and the geometric
preprocessing recorded at training time (input size, crop fraction, resample),
so a photo is prepared exactly as the training images were. The LiteRT path
never imports TensorFlow.

The model is called once with a blank image when it is loaded, so every time
reported is a warm time (the first call of a model pays for setup).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ImageError, StudioError

PREFER_CHOICES = ("litert", "tensorflow")
FLOAT_TFLITE = "model.tflite"
INT8_TFLITE = "model_int8.tflite"
_DEFAULT_GEOMETRY = {"crop_fraction": 1.0, "resample": "bilinear"}


@dataclass
class Prediction:
    """One image's answer.

    Attributes:
        top_k: `(label, probability)` pairs, best first.
        probabilities: every class's probability, in label order.
        seconds: the model's time for this image (warm).
        source: what was predicted (a path, or "<bytes>").
    """

    top_k: list[tuple[str, float]]
    probabilities: np.ndarray
    seconds: float
    source: str = ""

    @property
    def label(self) -> str:
        """The best label."""
        return self.top_k[0][0]

    @property
    def probability(self) -> float:
        """The best label's probability."""
        return self.top_k[0][1]


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
        self._output = self._interpreter.get_output_details()[0]
        shape = self._input["shape"]
        self.input_size = int(shape[1])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 `(N, S, S, 3)` batch, `(N, classes)` float32."""
        rows = [self._one(image) for image in batch]
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def _one(self, image: np.ndarray) -> np.ndarray:
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
            return (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)


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
            import keras

            try:
                model = keras.saving.load_model(path, compile=False)
            except (ValueError, OSError) as exc:
                raise StudioError(f"{path} is not a loadable Keras model ({exc})") from exc
            self._fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
            self.input_size = int(model.input_shape[1])
        self._tf = tf

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 `(N, S, S, 3)` batch, `(N, classes)` float32."""
        return np.asarray(self._fn(self._tf.constant(batch, self._tf.uint8)), dtype=np.float32)


def load_model(path: str | os.PathLike[str]) -> LiteModel | KerasModel:
    """Load a classifier by its kind: `.tflite` (LiteRT), `.keras` or a SavedModel folder.

    Args:
        path: the model.

    Returns:
        A callable model.

    Raises:
        StudioError: missing path or unknown kind.
    """
    path = Path(path)
    if not path.exists():
        raise StudioError(f"model {str(path)!r} does not exist; give a .tflite, .keras or run folder")
    if path.suffix == ".tflite":
        return LiteModel(path)
    if path.suffix == ".keras" or (path / "saved_model.pb").is_file():
        return KerasModel(path)
    raise StudioError(
        f"model {str(path)!r} is neither a .tflite, a .keras nor a SavedModel folder; give one of those"
    )


def _geometry_near(model_path: Path) -> dict[str, Any]:
    """Preprocessing recorded in a config.json beside the model or in its run folder."""
    for folder in (model_path.parent, model_path.parent.parent, model_path):
        config = folder / "config.json"
        if config.is_file():
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if "crop_fraction" in data:
                return {"crop_fraction": data["crop_fraction"], "resample": data["resample"]}
    return dict(_DEFAULT_GEOMETRY)


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


@dataclass
class Predictor:
    """A loaded model with its labels and preprocessing; predicts photos.

    Build it with `from_run` or `from_files`.

    Attributes:
        model: the callable model (`LiteModel` or `KerasModel`).
        labels: class names in output order.
        input_size: the model's input side.
        crop_fraction: central crop as a share of the short side.
        resample: the resize filter name.
        model_path: where the model came from.
    """

    model: Any
    labels: list[str]
    input_size: int
    crop_fraction: float = 1.0
    resample: str = "bilinear"
    model_path: Path | None = None
    warm: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not self.warm:
            self.model(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))
            self.warm = True

    @property
    def runtime(self) -> str:
        """ "litert" or "tensorflow"."""
        return self.model.runtime

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], *, prefer: str = "litert") -> Predictor:
        """Load a run's model once.

        Args:
            run_dir: the run folder.
            prefer: "litert" uses `export/model.tflite` when the run was
                exported (else `model.keras`); "tensorflow" always uses
                `model.keras`. Defaults to "litert".

        Returns:
            The predictor.

        Raises:
            StudioError: unknown `prefer`, or the run has no model yet.
        """
        if prefer not in PREFER_CHOICES:
            raise StudioError(f"prefer={prefer!r} is unknown; choose one of {PREFER_CHOICES}")
        folder = Path(run_dir)
        model_path = folder / "model.keras"
        tflite = folder / "export" / FLOAT_TFLITE
        if prefer == "litert" and tflite.is_file():
            model_path = tflite
        if not model_path.exists():
            raise StudioError(
                f"run {str(folder)!r} has no model.keras; pick a finished run or train one first"
            )
        labels = read_labels_file(folder / "labels.txt")
        return cls._build(load_model(model_path), labels, model_path, _geometry_near(folder / "x"))

    @classmethod
    def from_files(
        cls, graph: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None
    ) -> Predictor:
        """Load a model file and its labels (label_image.py's `--graph` and `--labels`).

        Args:
            graph: a `.tflite`, `.keras`, SavedModel folder, or a run folder.
            labels: the labels file. Defaults to None (a run folder's
                labels.txt, or labels.txt beside the model).

        Returns:
            The predictor.

        Raises:
            StudioError: missing files or a model whose classes do not match the labels.
        """
        graph = Path(graph)
        if graph.is_dir() and (graph / "model.keras").exists() and labels is None:
            return cls.from_run(graph)
        if labels is None:
            candidates = [graph.parent / "labels.txt", graph.parent.parent / "labels.txt"]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise StudioError(
                    f"no --labels given and no labels.txt beside {str(graph)!r}; pass --labels"
                )
            labels = found
        names = read_labels_file(labels)
        return cls._build(load_model(graph), names, graph, _geometry_near(graph))

    @classmethod
    def _build(cls, model: Any, labels: list[str], path: Path, geometry: dict[str, Any]) -> Predictor:
        predictor = cls(
            model=model,
            labels=labels,
            input_size=model.input_size,
            crop_fraction=float(geometry["crop_fraction"]),
            resample=str(geometry["resample"]),
            model_path=path,
        )
        classes = predictor.model(np.zeros((1, predictor.input_size, predictor.input_size, 3), np.uint8))
        if classes.shape[-1] != len(labels):
            raise StudioError(
                f"the model has {classes.shape[-1]} outputs but the labels file has {len(labels)} "
                "labels; give the labels.txt of the same run"
            )
        return predictor

    def prepare(self, source: Any) -> np.ndarray:
        """Decode and crop/resize one image as at training time.

        Args:
            source: a path, bytes or a binary file object.

        Returns:
            uint8 `(S, S, 3)`.

        Raises:
            ImageError: the source is not a usable image.
        """
        from engine import images

        min_side = images.draft_min_side(self.input_size, self.crop_fraction)
        image = images.load_image(source, min_side=min_side)
        return images.prepare_image(
            image, self.input_size, crop_fraction=self.crop_fraction, resample=self.resample
        )

    def predict_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for prepared uint8 images `(N, S, S, 3)`.

        Args:
            batch: prepared images.

        Returns:
            `(N, classes)` float32.
        """
        return self.model(np.asarray(batch, dtype=np.uint8))

    def predict(self, source: Any, top_k: int = 5) -> Prediction:
        """Top-k labels for one image.

        Args:
            source: a path, bytes or a binary file object.
            top_k: how many labels to return. Defaults to 5.

        Returns:
            The `Prediction` (its `seconds` is the model's warm time).

        Raises:
            ValueError: `top_k` below 1.
            ImageError: the source is not a usable image.
        """
        if top_k < 1:
            raise ValueError(f"top_k={top_k!r} is not allowed; use 1 or more")
        image = self.prepare(source)
        start = time.perf_counter()
        probabilities = self.model(image[None])[0]
        seconds = time.perf_counter() - start
        order = np.argsort(-probabilities)[:top_k]
        return Prediction(
            top_k=[(self.labels[i], float(probabilities[i])) for i in order],
            probabilities=probabilities,
            seconds=seconds,
            source=source
            if isinstance(source, str)
            else str(source)
            if isinstance(source, Path)
            else "<bytes>",
        )

    def predict_many(self, sources: Iterable[Any], top_k: int = 5) -> Any:
        """Predict many images; one that fails is listed with its error, the rest go on.

        Args:
            sources: paths (or bytes).
            top_k: labels kept per image (joined in the `top_k` column). Defaults to 5.

        Returns:
            A `pandas.DataFrame` with columns `source, label, probability,
            top_k, seconds, error` (label and probability empty on error).
        """
        import pandas as pd

        rows = []
        for source in sources:
            name = str(source) if isinstance(source, str | Path) else "<bytes>"
            try:
                prediction = self.predict(source, top_k=top_k)
            except ImageError as exc:
                rows.append(
                    {"source": name, "label": None, "probability": None, "top_k": "",
                     "seconds": None, "error": exc.reason}
                )  # fmt: skip
                continue
            rows.append(
                {
                    "source": name,
                    "label": prediction.label,
                    "probability": round(prediction.probability, 6),
                    "top_k": "; ".join(f"{label}:{p:.4f}" for label, p in prediction.top_k),
                    "seconds": round(prediction.seconds, 6),
                    "error": None,
                }
            )
        columns = ["source", "label", "probability", "top_k", "seconds", "error"]
        return pd.DataFrame(rows, columns=columns)


def image_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand folders into the files they hold (sorted, hidden files skipped).

    Args:
        paths: files and folders.

    Returns:
        The files, folders expanded recursively.

    Raises:
        StudioError: a path that does not exist.
    """
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            out.extend(p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith("."))
        elif path.exists():
            out.append(path)
        else:
            raise StudioError(f"--image {str(path)!r} does not exist; give an image file or folder")
    return out
