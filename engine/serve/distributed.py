"""Batch prediction on a Ray cluster (`label_image --ray`): many files, the same answers.

The driver lists the files; Ray tasks decode and prepare them exactly as
`Predictor.prepare` does (the run's input size, crop and resample), an actor
pool (one actor per node) holds the model loaded from the same file, and the
probabilities (and the backbone's features, when the run's unknown rule needs
them) come back to the driver, which applies the unknown rule and builds
`predict_many`'s table: the same columns as in-process, unknown ones included.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.core import cluster, raydata
from engine.core.errors import StudioError
from engine.data.geometry import load_prepared
from engine.serve.inference import Predictor, prediction_table

DEFAULT_BATCH = 32


class PredictActor(raydata.ModelActor):
    """Holds one loaded model per node; turns prepared images into class probabilities
    (and features, when asked: what a feature-based unknown rule scores)."""

    def setup(self, *, model_path: str, features: bool = False) -> None:
        from engine.serve.model_files import load_model

        self.model = load_model(model_path)
        self.features = features

    def run(self, batch: dict[str, Any]) -> dict[str, Any]:
        images, errors = batch["image"], np.asarray(batch["error"], dtype=object)
        ok = errors == ""
        out = np.zeros((len(errors), 1), np.float32)
        features = np.zeros((len(errors), 1), np.float32)
        start = time.perf_counter()
        if ok.any():
            x = np.ascontiguousarray(images[ok])
            found = None
            if self.features:
                probabilities, found = self.model.with_features(x)
            else:
                probabilities = self.model(x)
            out = _spread(np.asarray(probabilities, np.float32), ok)
            if found is not None:
                features = _spread(np.asarray(found, np.float32), ok)
        per_image = (time.perf_counter() - start) / max(1, int(ok.sum()))
        return {"index": np.asarray(batch["index"]), "probabilities": out, "features": features,
                "error": errors, "seconds": np.full(len(errors), per_image)}  # fmt: skip


def _spread(rows: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """`rows` (one per good image) placed at the good images' places; zeros at the bad ones'."""
    out = np.zeros((len(ok), rows.shape[-1]), np.float32)
    out[ok] = rows
    return out


def predict_many_ray(
    predictor: Predictor,
    sources: Sequence[str],
    *,
    address: str,
    top_k: int = 5,
    batch_size: int = DEFAULT_BATCH,
) -> Any:
    """`Predictor.predict_many` on a Ray cluster: one row per file, a bad file listed with its error.

    Args:
        predictor: the loaded predictor (its model file is what the actors load).
        sources: image paths (every node must see them at these paths).
        address: "local" or the head's HOST:PORT.
        top_k: labels kept per image. Defaults to 5.
        batch_size: images per batch. Defaults to 32.

    Returns:
        The same `pandas.DataFrame` as `predict_many`, rows in the order of `sources`.

    Raises:
        StudioError: the model has no file, or the cluster cannot be reached or fails.
    """
    if predictor.model_path is None:
        raise StudioError(
            "this model was not loaded from a file; --ray needs a model file or run folder"
        )
    info = cluster.connect(address)
    load = functools.partial(
        load_prepared, size=predictor.input_size, crop_fraction=predictor.crop_fraction,
        resample=predictor.resample,
    )  # fmt: skip
    prepare = functools.partial(raydata.prepare_batch, load=load, size=predictor.input_size)
    rule = predictor.rule
    needs_features = rule is not None and rule.needs_features
    actor_args = {"model_path": str(predictor.model_path), "features": needs_features}
    rows: list[dict[str, Any] | None] = [None] * len(sources)
    try:
        for batch in raydata.map_files(
            info, sources, prepare, PredictActor, actor_args, batch_size=batch_size
        ):
            probabilities = np.asarray(batch["probabilities"])
            good = np.asarray(batch["error"], dtype=object) == ""
            scores = None
            if rule is not None and good.any():  # a bad photo's row of zeros is never scored
                scores = np.full(len(good), np.nan)
                found = np.asarray(batch["features"])[good] if needs_features else None
                scores[good] = rule.scores(probabilities[good], found)
            for k, index in enumerate(batch["index"]):
                error = str(batch["error"][k])
                name = str(sources[int(index)])
                rows[int(index)] = (
                    predictor.row(name, None, error=error)
                    if error
                    else predictor.row(
                        name, probabilities[k], top_k=top_k, seconds=float(batch["seconds"][k]),
                        unknown_score=None if scores is None else float(scores[k]),
                    )
                )  # fmt: skip
    except StudioError:
        raise
    except Exception as exc:  # Ray's errors: a node, an actor or the head went away
        cluster.disconnect()
        raise cluster.cluster_error(exc, address) from exc
    return prediction_table([row for row in rows if row is not None])
