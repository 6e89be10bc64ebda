"""Answering a photo with a trained run: label_image.py, loaded once.

A `Predictor` holds one loaded model (a float `.tflite` run by LiteRT when the
run was exported, else the run's `model.keras`), its labels and the geometric
preprocessing recorded at training time (input size, crop fraction, resample),
so a photo is prepared exactly as the training images were. The LiteRT path
never imports TensorFlow.

The model is called once with a blank image when it is loaded, so every time
reported is a warm time (the first call of a model pays for setup).

The unknown answer: a model the studio wrote carries its run's rejection rules
(`engine.serve.unknown`); a `Predictor` applies the one its model can serve
(the chosen feature rule on a run's assembled LiteRT model, which gives the
backbone's features; the probability-only fallback on every other model) and
marks a photo `unknown` when the rule rejects it, its top classes still
given. `Predictor(unknown=False)` (or `from_run(..., unknown=False)`) turns
it off; a model without rules (an old run) always names a class, as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import ImageError, StudioError
from engine.core.rundir import RunDir
from engine.data.geometry import load_prepared
from engine.models.runtime import RUNTIMES
from engine.serve.model_files import (
    geometry_near,
    labels_beside,
    load_model,
    read_labels_file,
)
from engine.serve.model_info import read_info
from engine.serve.unknown import Rule, RuleSet, read_rules

PREFER_CHOICES = RUNTIMES


@dataclass
class Prediction:
    """One image's answer.

    Attributes:
        top_k: `(label, probability)` pairs, best first.
        probabilities: every class's probability, in label order.
        seconds: the model's time for this image (warm).
        source: what was predicted (a path, or "<bytes>").
        unknown: True when the run's unknown rule rejects the photo as none of
            its classes (top_k still holds the nearest classes).
        unknown_score: the rule's score for the photo (higher is stranger), or
            None when the model has no rule or it is turned off.
    """

    top_k: list[tuple[str, float]]
    probabilities: np.ndarray
    seconds: float
    source: str = ""
    unknown: bool = False
    unknown_score: float | None = None

    @property
    def label(self) -> str:
        """The best label."""
        return self.top_k[0][0]

    @property
    def probability(self) -> float:
        """The best label's probability."""
        return self.top_k[0][1]


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
        rules: the run's unknown rules, or None (an old run, or a model without them).
        unknown: whether to apply them (False: always name a class).
    """

    model: Any
    labels: list[str]
    input_size: int
    crop_fraction: float = 1.0
    resample: str = "bilinear"
    model_path: Path | None = None
    warm: bool = field(default=False, repr=False)
    rules: RuleSet | None = field(default=None, repr=False)
    unknown: bool = True

    def __post_init__(self) -> None:
        if not self.warm:
            self.model(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))
            self.warm = True

    @property
    def rule(self) -> Rule | None:
        """The unknown rule applied: the run's chosen one when the model gives features, else
        the probability-only fallback; None when turned off or the model has no rules."""
        if not self.unknown or self.rules is None:
            return None
        size = getattr(self.model, "feature_size", None)
        return self.rules.for_model(size is not None, size)

    @property
    def runtime(self) -> str:
        """ "litert" or "tensorflow"."""
        return self.model.runtime

    @classmethod
    def from_run(
        cls, run_dir: str | os.PathLike[str], *, prefer: str = "litert", unknown: bool = True
    ) -> Predictor:
        """Load a run's model once.

        Args:
            run_dir: the run folder.
            prefer: "litert" uses `export/model.tflite` when the run was
                exported (else `model.keras`); "tensorflow" always uses
                `model.keras`. Defaults to "litert".
            unknown: answer `unknown` when the run's rule rejects a photo. Defaults to True.

        Returns:
            The predictor.

        Raises:
            StudioError: unknown `prefer`, or the run has no model yet.
        """
        if prefer not in PREFER_CHOICES:
            raise StudioError(f"prefer={prefer!r} is unknown; choose one of {PREFER_CHOICES}")
        run = RunDir(run_dir)
        folder = run.path
        model_path = run.model_path
        if prefer == "litert" and run.tflite_path.is_file():
            model_path = run.tflite_path
        if not model_path.exists() and run.tflite_path.is_file():
            raise StudioError(
                f"run {str(folder)!r} has no model.keras yet (its exports follow the training; "
                f"`python -m engine export --run_dir {folder}` makes it); use its LiteRT model instead"
            )
        if not model_path.exists():
            raise StudioError(
                f"run {str(folder)!r} has no model yet (neither export/model.tflite nor model.keras); "
                "pick a finished run or train one first"
            )
        labels = read_labels_file(run.labels_path)
        rules = read_rules(folder) or RuleSet.from_dict((read_info(model_path) or {}).get("unknown"))
        return cls._build(
            load_model(model_path), labels, model_path, geometry_near(folder / "x"), rules, unknown
        )

    @classmethod
    def from_files(
        cls,
        graph: str | os.PathLike[str],
        labels: str | os.PathLike[str] | None = None,
        *,
        unknown: bool = True,
    ) -> Predictor:
        """Load a model file and its labels (label_image.py's `--graph` and `--labels`).

        Args:
            graph: a TFLite or Keras model file (recognised by its content, whatever
                its name), a SavedModel folder, or a run folder.
            labels: the labels file. Defaults to None: the labels the model file
                carries (every model the studio writes does), else a labels.txt beside
                it or in its run folder, else `tf_files/retrained_labels.txt`.
            unknown: answer `unknown` when the rule the model carries rejects a photo.
                Defaults to True.

        Returns:
            The predictor.

        Raises:
            StudioError: missing files or a model whose classes do not match the labels.
        """
        graph = Path(graph)
        if graph.is_dir() and RunDir(graph).has_model() and labels is None:
            return cls.from_run(graph, unknown=unknown)
        model = load_model(graph)  # by content: a .keras saved as retrained_graph.pb works
        info = read_info(graph) or {}
        if labels is not None:
            names = read_labels_file(labels)
        elif info.get("labels"):
            names = [str(label) for label in info["labels"]]
        else:
            names = read_labels_file(labels_beside(graph))
        geometry = (
            {"crop_fraction": info["crop_fraction"], "resample": info["resample"]}
            if info.get("crop_fraction") and info.get("resample")
            else geometry_near(graph)
        )
        rules = RuleSet.from_dict(info.get("unknown"))
        return cls._build(model, names, graph, geometry, rules, unknown)

    @classmethod
    def _build(
        cls,
        model: Any,
        labels: list[str],
        path: Path,
        geometry: dict[str, Any],
        rules: RuleSet | None = None,
        unknown: bool = True,
    ) -> Predictor:
        predictor = cls(
            model=model,
            labels=labels,
            input_size=model.input_size,
            crop_fraction=float(geometry["crop_fraction"]),
            resample=str(geometry["resample"]),
            model_path=path,
            rules=rules if rules is not None and len(rules.rule_classes()) == len(labels) else None,
            unknown=unknown,
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
        return load_prepared(
            source, self.input_size, crop_fraction=self.crop_fraction, resample=self.resample
        )

    def predict_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for prepared uint8 images `(N, S, S, 3)`.

        Args:
            batch: prepared images.

        Returns:
            `(N, classes)` float32.
        """
        return self.model(np.asarray(batch, dtype=np.uint8))

    def score_arrays(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and unknown scores for prepared uint8 images `(N, S, S, 3)`.

        Args:
            batch: prepared images.

        Returns:
            `(N, classes)` float32 probabilities and `(N,)` scores (higher is stranger), or
            None for the scores when no rule applies (`rule`).
        """
        batch = np.asarray(batch, dtype=np.uint8)
        rule = self.rule
        if rule is None:
            return self.model(batch), None
        if rule.needs_features:
            probabilities, features = self.model.with_features(batch)
            return probabilities, rule.scores(probabilities, features)
        probabilities = self.model(batch)
        return probabilities, rule.scores(probabilities)

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
        batch_probabilities, scores = self.score_arrays(image[None])
        seconds = time.perf_counter() - start
        probabilities = batch_probabilities[0]
        order = np.argsort(-probabilities)[:top_k]
        rule = self.rule
        score = None if scores is None else float(scores[0])
        return Prediction(
            unknown=bool(rule is not None and score is not None and score > rule.threshold),
            unknown_score=score,
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
            top_k, seconds, error, unknown, unknown_score` (label and probability
            empty on error; `label` is the nearest class even when `unknown` is
            True; the unknown columns empty when no rule applies).
        """
        rows = []
        for source in sources:
            name = str(source) if isinstance(source, str | Path) else "<bytes>"
            try:
                prediction = self.predict(source, top_k=top_k)
            except ImageError as exc:
                rows.append(self.row(name, None, error=exc.reason))
                continue
            rows.append(
                self.row(
                    name,
                    prediction.probabilities,
                    top_k=top_k,
                    seconds=prediction.seconds,
                    unknown_score=prediction.unknown_score,
                )
            )
        return prediction_table(rows)

    def row(
        self,
        source: str,
        probabilities: np.ndarray | None,
        *,
        top_k: int = 5,
        seconds: float | None = None,
        error: str | None = None,
        unknown_score: float | None = None,
    ) -> dict[str, Any]:
        """One row of `predict_many`'s table: the best labels, or the error.

        Args:
            source: the image's name.
            probabilities: its class probabilities, or None when it failed.
            top_k: labels kept in the `top_k` column. Defaults to 5.
            seconds: the model's time for it. Defaults to None.
            error: why it failed. Defaults to None.
            unknown_score: the unknown rule's score, when one applied. Defaults to None.
        """
        if probabilities is None:
            return {"source": source, "label": None, "probability": None, "top_k": "",
                    "seconds": None, "error": error, "unknown": None, "unknown_score": None}  # fmt: skip
        rule = self.rule
        unknown = None if rule is None or unknown_score is None else bool(unknown_score > rule.threshold)
        order = np.argsort(-probabilities)[:top_k]
        return {
            "source": source,
            "label": self.labels[order[0]],
            "probability": round(float(probabilities[order[0]]), 6),
            "top_k": "; ".join(f"{self.labels[i]}:{float(probabilities[i]):.4f}" for i in order),
            "seconds": None if seconds is None else round(seconds, 6),
            "error": None,
            "unknown": unknown,
            "unknown_score": None if unknown is None else round(float(unknown_score or 0.0), 6),
        }


PREDICTION_COLUMNS = [
    "source", "label", "probability", "top_k", "seconds", "error", "unknown", "unknown_score"
]  # fmt: skip


def prediction_table(rows: Sequence[dict[str, Any]]) -> Any:
    """`predict_many`'s rows as a `pandas.DataFrame` with its columns in order."""
    import pandas as pd

    return pd.DataFrame(list(rows), columns=PREDICTION_COLUMNS)


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
