"""A run's training data: records, truth and (for a frozen backbone) cached features per split.

`training_data` gives `engine.train.loop.TrainingData` for the run's split;
its features come from the bottleneck cache (`engine.train.bottlenecks`),
computed where missing, with what was cached, computed, damaged or skipped
recorded in the run's status. A file that cannot be decoded is left out and
listed, never fatal, unless no training image is left.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.data.dataset import Dataset, ImageRecord
from engine.models.runtime import FeatureRuntime
from engine.train import bottlenecks
from engine.train.config import TrainConfig
from engine.train.events import EventSink
from engine.train.loop import SPLIT_NAMES, TrainingData


def training_data(
    config: TrainConfig,
    dataset: Dataset,
    runtime: FeatureRuntime,
    decoder: str,
    *,
    run: RunDir,
    sink: EventSink,
    echo: Callable[[str], None],
    should_stop: Callable[[], bool],
) -> tuple[TrainingData, list[tuple[str, str]]]:
    """Records, truth and (unless fine-tuning or from scratch) features per split.

    Args:
        config: the resolved settings.
        dataset: the scanned dataset (its split).
        runtime: the backbone's feature runtime.
        decoder: "pil" or "tf" (how photos are decoded for the features).
        run: the run folder (its status gets the bottleneck counts and warnings).
        sink: the run's events (the `bottlenecks` phase and its progress).
        echo: gets a `skipped <path>: <reason>` line per file left out.
        should_stop: True when the run is being cancelled.

    Returns:
        The `TrainingData` and the `(path, reason)` of each file left out.

    Raises:
        StudioError: no training image could be decoded.
    """
    index_of = {label: i for i, label in enumerate(dataset.labels)}
    splits = {name: list(dataset.split(name)) for name in SPLIT_NAMES}
    skipped: list[tuple[str, str]] = []
    features: dict[str, np.ndarray] = {}
    if config.fine_tune_blocks == 0 and runtime.backbone.pretrained:  # small_cnn reads images
        features, splits, skipped = _bottlenecks(config, splits, runtime, decoder, run, sink, echo,
                                                 should_stop)  # fmt: skip
    truth = {
        name: np.asarray([index_of[r.label] for r in recs], dtype=np.int64)
        for name, recs in splits.items()
    }
    if not len(truth["train"]):
        raise StudioError("no training image could be decoded; check the dataset's problems list")
    return TrainingData(splits, truth, features), skipped


def _bottlenecks(
    config: TrainConfig,
    splits: dict[str, list[ImageRecord]],
    runtime: FeatureRuntime,
    decoder: str,
    run: RunDir,
    sink: EventSink,
    echo: Callable[[str], None],
    should_stop: Callable[[], bool],
) -> tuple[dict[str, np.ndarray], dict[str, list[ImageRecord]], list[tuple[str, str]]]:
    sink.phase("bottlenecks")
    features, new_splits, result = bottlenecks.split_bottlenecks(
        splits, runtime, weights=config.weights, bottleneck_dir=config.bottleneck_dir,
        seed=config.seed, decoder=decoder, progress=sink.on_progress,
        should_stop=should_stop, ray_address=config.ray,
    )  # fmt: skip
    run.update_status(
        bottlenecks={
            "cached": result.cached,
            "computed": result.computed,
            "damaged": result.damaged,
            "skipped": len(result.skipped),
            "seconds": round(result.seconds, 3),
            **({"ray_nodes": result.nodes} if result.nodes else {}),
        }
    )
    if result.damaged:
        run.record_warning(
            f"{result.damaged} bottleneck cache entries failed their checksum and were recomputed"
        )
    for path, reason in result.skipped:
        echo(f"skipped {path}: {reason}")
    return features, new_splits, result.skipped
