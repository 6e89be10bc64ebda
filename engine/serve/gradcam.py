"""Why this answer: a Grad-CAM heatmap over the photo for the class the run's model predicts.

Grad-CAM weighs the backbone's last convolutional feature map by the gradient
of the class score with respect to it, averaged over the map. Every studio
model ends in global average pooling, (dropout,) and one dense layer, so that
gradient is the dense kernel's column for the class divided by the map's
area, at every position: Grad-CAM here is exactly `relu(A @ kernel[:, c])`,
computed from one forward pass to the last map (no gradient tape). The class
scores are recomputed from the same map (`mean(A) @ kernel + bias`) and must
match the full model's, which checks that the map is the one the head sees.

TensorFlow is imported only when a `Heatmapper` is built (a heatmap is asked
for); the model is the run's `model.keras` (fine-tuned backbones included).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.data.geometry import load_prepared
from engine.serve.model_files import read_labels_file


@dataclass(frozen=True)
class Heatmap:
    """A heatmap for one photo.

    Attributes:
        label: the class explained (the predicted one unless asked otherwise).
        probability: the model's probability for it.
        cam: `(h, w)` float32 in [0, 1], the last feature map's grid.
        overlay: PNG bytes: the prepared photo with the heatmap blended over it.
    """

    label: str
    probability: float
    cam: np.ndarray
    overlay: bytes


def _colour(cam: np.ndarray) -> np.ndarray:
    """A blue-to-red colour ramp for values in [0, 1]: `(h, w, 3)` uint8."""
    red = np.clip(1.5 * cam * 2 - 0.5, 0, 1)
    green = np.clip(1.5 - np.abs(cam * 4 - 2), 0, 1)
    blue = np.clip(1.5 - cam * 3, 0, 1)
    return (np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def overlay_png(photo: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> bytes:
    """Blend `cam` (upsampled, smooth) over a uint8 `(S, S, 3)` photo; return PNG bytes."""
    from PIL import Image

    size = (photo.shape[1], photo.shape[0])
    heat = Image.fromarray((cam * 255).astype(np.uint8)).resize(size, Image.BICUBIC)
    colour = _colour(np.asarray(heat, np.float32) / 255.0)
    blended = (photo.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).astype(
        np.uint8
    )
    buffer = io.BytesIO()
    Image.fromarray(blended).save(buffer, format="PNG")
    return buffer.getvalue()


class Heatmapper:
    """Heatmaps for one run's model; build once, call per photo.

    Args:
        run_dir: a finished run's folder (with `model.keras` and `labels.txt`).

    Raises:
        StudioError: the run has no model, or its model does not end in pooling and one dense layer.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        import keras

        run = RunDir(run_dir)
        if not run.model_path.is_file():
            raise StudioError(f"run {run.path.name!r} has no model.keras; pick a finished run")
        config = run.read_config()
        self.labels = read_labels_file(run.labels_path)
        self.size = int(config.get("input_size") or 224)
        self.crop_fraction = float(config.get("crop_fraction") or 1.0)
        self.resample = str(config.get("resample") or "bilinear")
        model = keras.saving.load_model(run.model_path, compile=False)
        extractor = next((layer for layer in model.layers if getattr(layer, "layers", None)), None)
        dense = next((layer for layer in model.layers if isinstance(layer, keras.layers.Dense)), None)
        if extractor is None or dense is None:
            raise StudioError("this model has no backbone and dense head the heatmap can explain")
        last_map = None
        for layer in extractor.layers:
            if len(getattr(layer, "output", None).shape or ()) == 4:
                last_map = layer
        if last_map is None or not isinstance(extractor.layers[-1], keras.layers.GlobalAveragePooling2D):
            raise StudioError("the backbone does not end in a feature map and global pooling")
        self._maps = keras.Model(extractor.input, last_map.output)
        self._model = model
        self.kernel = np.asarray(dense.kernel, np.float32)
        self.bias = np.asarray(dense.bias, np.float32)

    def prepare(self, source: Any) -> np.ndarray:
        """The photo as the model sees it: uint8 `(S, S, 3)` (a path, bytes or file object)."""
        return load_prepared(source, self.size, crop_fraction=self.crop_fraction, resample=self.resample)

    def feature_map(self, prepared: np.ndarray) -> np.ndarray:
        """The backbone's last feature map for one prepared photo: `(h, w, channels)` float32."""
        return np.asarray(self._maps(prepared[None], training=False), np.float32)[0]

    def probabilities(self, prepared: np.ndarray) -> np.ndarray:
        """The full model's class probabilities for one prepared photo."""
        return np.asarray(self._model(prepared[None], training=False), np.float32)[0]

    def __call__(self, source: Any, class_index: int | None = None) -> Heatmap:
        """The heatmap of one photo.

        Args:
            source: a path, bytes or a binary file object.
            class_index: the class to explain. Defaults to the predicted one.

        Returns:
            The `Heatmap`.
        """
        prepared = self.prepare(source)
        maps = self.feature_map(prepared)
        logits = maps.mean(axis=(0, 1)) @ self.kernel + self.bias
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        chosen = int(np.argmax(logits)) if class_index is None else int(class_index)
        if not 0 <= chosen < len(self.labels):
            raise StudioError(
                f"class_index={class_index} is out of range; the model has {len(self.labels)} classes"
            )
        cam = np.maximum(maps @ self.kernel[:, chosen], 0)
        top = float(cam.max())
        cam = cam / top if top > 0 else cam
        return Heatmap(
            self.labels[chosen],
            float(probabilities[chosen]),
            cam.astype(np.float32),
            overlay_png(prepared, cam),
        )
