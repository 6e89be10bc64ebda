"""The features a review needs: the bottleneck cache's, computing only the missing ones.

A review reads the same cache a training fills (`engine.train.cache`, keyed by
backbone, input size and decoder), so right after a training every feature
is there and a review extracts nothing; on a fresh dataset the missing
features are computed once, with a progress bar, and kept for the training
that follows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.core.progress import ProgressCallback
from engine.models.loading import load_feature_runtime
from engine.models.registry import DEFAULT_BACKBONE, get_backbone
from engine.train.bottlenecks import BottleneckResult, extract_bottlenecks
from engine.train.cache import BottleneckCache


def dataset_features(
    records: list[Any],
    *,
    architecture: str | None = None,
    bottleneck_dir: str | None = None,
    progress: ProgressCallback | None = None,
) -> BottleneckResult:
    """Features of `records` from the cache the training uses, computing only what is missing.

    Args:
        records: `ImageRecord`s of a scan.
        architecture: a registry name. Defaults to the studio's default backbone.
        bottleneck_dir: the cache folder (retrain.py's `--bottleneck_dir`). Defaults to the studio's.
        progress: called with `Progress("bottlenecks", ...)`. Defaults to None.

    Returns:
        The `BottleneckResult` (undecodable images are listed in `skipped`).
    """
    backbone = get_backbone(architecture or DEFAULT_BACKBONE)
    runtime = load_feature_runtime(backbone.name, prefer="litert", weights="imagenet")
    decoder = "tf" if runtime.runtime == "tensorflow" else "pil"
    cache = BottleneckCache.for_runtime(runtime, bottleneck_dir, weights="imagenet", decoder=decoder)
    if not records:
        return BottleneckResult(np.zeros((0, backbone.feature_size), np.float32), [])
    return extract_bottlenecks(records, runtime, cache=cache, progress=progress, decoder=decoder)
