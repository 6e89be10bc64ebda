"""Bottlenecks: the frozen backbone's features for every image, cached on disk.

retrain.py called the network once per image and kept one text file per image.
Here decoding and resizing run in a thread pool (`engine.data.batches`; large
JPEGs decode in draft mode at a reduced scale) a few batches ahead of the
feature runtime, which sees whole batches. A runtime with `concurrency` above
1 (LiteRT: one interpreter per core on a small machine) gets that many batches
at once; LiteRT releases the GIL while it computes, so decoding, inference and
cache writes overlap. `decoder="tf"` decodes with tf.data instead
(`engine.train.tfdata`). Features are stored in the `BottleneckCache`
(`engine.train.cache`).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.errors import StudioError
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.data.batches import DEFAULT_BATCH_SIZE, iter_prepared_batches
from engine.models.runtime import FeatureRuntime
from engine.train.cache import BottleneckCache

DECODERS = ("pil", "tf")


@dataclass
class BottleneckResult:
    """What `extract_bottlenecks` produced.

    Attributes:
        features: `(len(kept), feature_size)` float32, in the order of `kept`.
        kept: indices into the given records that have features.
        skipped: `(rel_path, reason)` for images that could not be decoded.
        cached: how many came from the cache.
        computed: how many were computed now.
        damaged: cache entries that failed their checksum and were recomputed.
        seconds: wall time.
        nodes: images computed per Ray node id (empty in-process).
    """

    features: np.ndarray
    kept: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cached: int = 0
    computed: int = 0
    damaged: int = 0
    seconds: float = 0.0
    nodes: dict[str, int] = field(default_factory=dict)


def extract_bottlenecks(
    records: Sequence[Any],
    runtime: FeatureRuntime,
    *,
    cache: BottleneckCache | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    decoder: str = "pil",
    ray_address: str | None = None,
) -> BottleneckResult:
    """Features for every record: from the cache when there, else computed in batches.

    Images that cannot be decoded are skipped and listed, the rest go on.
    Decoding runs ahead of the runtime; a runtime whose `concurrency` is
    above 1 computes that many batches at once, and the next batch is
    always queued while the oldest is stored.

    Args:
        records: `ImageRecord`s (need `path`, `rel_path`, `sha256`).
        runtime: the feature runtime.
        cache: where to look up and store features. Defaults to None (no cache).
        progress: called with `Progress("bottlenecks", ...)`; `detail` holds
            `cached`, `computed`, `skipped`. Defaults to None.
        batch_size: images per runtime call. Defaults to 32.
        workers: decode threads. Defaults to the CPU count (2 to 8).
        should_stop: polled between batches; True stops early with
            `StudioError`. Defaults to None.
        decoder: "pil" (thread pool, JPEG draft mode) or "tf" (tf.data; see
            `iter_tf_batches`). Defaults to "pil".
        ray_address: compute the missing features on this Ray cluster ("local" or
            HOST:PORT; `engine.train.distributed`). Defaults to None (in this process).

    Returns:
        A `BottleneckResult`.

    Raises:
        ValueError: when `batch_size` is not positive or `decoder` is unknown.
        StudioError: when stopped through `should_stop`, or the Ray cluster fails.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size!r} is not allowed; give a positive number")
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r} is unknown; choose one of {', '.join(DECODERS)}")
    start = time.monotonic()
    feature_size = runtime.backbone.feature_size
    out = np.zeros((len(records), feature_size), dtype=np.float32)
    have = np.zeros(len(records), dtype=bool)
    tracker = ProgressTracker("bottlenecks", len(records), progress, unit="images")
    result = BottleneckResult(features=out, kept=[])

    if cache is not None and records:
        found, result.damaged = cache.get_many(r.sha256 for r in records)
        for i, record in enumerate(records):
            vector = found.get(record.sha256)
            if vector is not None:
                out[i] = vector
                have[i] = True
        result.cached = int(have.sum())
    tracker.advance(result.cached, cached=result.cached, computed=0, skipped=0)

    missing = [i for i in range(len(records)) if not have[i]]
    if ray_address is not None and missing:
        from engine.train.distributed import ray_batches

        computed = (
            ([missing[k] for k in positions], features, [(missing[k], why) for k, why in failures])
            for positions, features, failures in ray_batches(
                [str(records[i].path) for i in missing],
                runtime,
                address=ray_address,
                batch_size=batch_size,
                nodes=result.nodes,
            )
        )
        batches: Any = computed
    elif decoder == "tf":
        from engine.train.tfdata import iter_tf_batches

        batches = (
            ([missing[k] for k in positions], batch, [(missing[k], why) for k, why in failures])
            for positions, batch, failures in iter_tf_batches(
                [records[i] for i in missing],
                runtime.backbone,
                runtime.input_size,
                batch_size=batch_size,
                workers=workers,
            )
        )
    else:

        def load(index: int) -> np.ndarray:
            return runtime.backbone.load(records[index].path, runtime.input_size)

        # iter_prepared_batches numbers its items by position in `missing`: map them back.
        batches = (
            ([missing[k] for k in positions], batch, [(missing[k], why) for k, why in failures])
            for positions, batch, failures in iter_prepared_batches(
                missing, load, batch_size=batch_size, workers=workers
            )
        )

    def finish(indices: list[int], features: np.ndarray) -> None:
        out[indices] = features
        have[indices] = True
        result.computed += len(indices)
        if cache is not None:
            cache.put_many((records[i].sha256, features[k]) for k, i in enumerate(indices))
        tracker.advance(
            len(indices), cached=result.cached, computed=result.computed, skipped=len(result.skipped)
        )

    parallel = 1 if ray_address is not None else max(1, int(getattr(runtime, "concurrency", 1) or 1))
    in_flight: collections.deque[tuple[list[int], Future[np.ndarray]]] = collections.deque()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="features") as compute:
        try:
            for indices, batch, failures in batches:
                if should_stop is not None and should_stop():
                    raise StudioError(
                        "bottleneck extraction was cancelled; start the run again to resume"
                    )
                for index, reason in failures:
                    result.skipped.append((str(records[index].rel_path), reason))
                if failures:
                    tracker.advance(
                        len(failures),
                        cached=result.cached,
                        computed=result.computed,
                        skipped=len(result.skipped),
                    )
                if batch is None:
                    continue
                if ray_address is not None:  # the cluster computed them already
                    finish(indices, batch)
                    continue
                in_flight.append((indices, compute.submit(runtime.features, batch)))
                # One batch more than the runtime runs at once stays queued, so it
                # never waits while the oldest is stored; results come back in order.
                while len(in_flight) > parallel:
                    done_indices, future = in_flight.popleft()
                    finish(done_indices, np.asarray(future.result(), dtype=np.float32))
            while in_flight:
                done_indices, future = in_flight.popleft()
                finish(done_indices, np.asarray(future.result(), dtype=np.float32))
        finally:
            for _, future in in_flight:
                future.cancel()
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops the decode threads now, not when garbage-collected
    if tracker.done < tracker.total or not records:
        tracker.finish()  # advance() already reported the last snapshot otherwise
    result.kept = [i for i in range(len(records)) if have[i]]
    result.features = out[result.kept] if len(result.kept) != len(records) else out
    result.seconds = time.monotonic() - start
    return result


def compute_bottlenecks(
    records: Sequence[Any],
    runtime: FeatureRuntime,
    *,
    cache: BottleneckCache | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Features for every record, row for row (see `extract_bottlenecks`).

    Args:
        records: `ImageRecord`s.
        runtime: the feature runtime.
        cache: the cache to use. Defaults to None.
        progress: progress callback. Defaults to None.
        batch_size: images per runtime call. Defaults to 32.

    Returns:
        `(len(records), feature_size)` float32.

    Raises:
        StudioError: when an image cannot be decoded (rescan the dataset to drop it).
    """
    result = extract_bottlenecks(records, runtime, cache=cache, progress=progress, batch_size=batch_size)
    if result.skipped:
        listed = "; ".join(f"{path}: {reason}" for path, reason in result.skipped[:5])
        raise StudioError(
            f"{len(result.skipped)} image(s) could not be decoded ({listed}); "
            "rescan the dataset so they are left out, or fix the files"
        )
    return result.features


def split_bottlenecks(
    splits: dict[str, list[Any]],
    runtime: FeatureRuntime,
    *,
    weights: str | None,
    bottleneck_dir: str | None = None,
    seed: int | None = None,
    decoder: str = "pil",
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    ray_address: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, list[Any]], BottleneckResult]:
    """Features of every split in one extraction, cut back into the splits.

    ImageNet features go to the shared cache (or `bottleneck_dir`); features
    of random weights (tests) differ per build, so they are cached only in a
    folder the caller names, keyed by the seed.

    Args:
        splits: the records of each split, by split name (order kept).
        runtime: the feature runtime.
        weights: "imagenet" or None (random).
        bottleneck_dir: the cache folder. Defaults to None (the studio's cache for ImageNet
            features, none for random ones).
        seed: the run's seed (keys random-weight features). Defaults to None.
        decoder: as in `extract_bottlenecks`. Defaults to "pil".
        progress: as in `extract_bottlenecks`. Defaults to None.
        should_stop: as in `extract_bottlenecks`. Defaults to None.
        ray_address: as in `extract_bottlenecks`. Defaults to None.

    Returns:
        `(features per split, records per split that have features, the whole result)`;
        undecodable records are left out of both and listed in `result.skipped`.
    """
    cache = None
    if weights == "imagenet" or bottleneck_dir is not None:
        key = str(weights) if weights == "imagenet" else f"seed{seed}"
        cache = BottleneckCache.for_runtime(runtime, bottleneck_dir, weights=key, decoder=decoder)
    every = [record for records in splits.values() for record in records]
    result = extract_bottlenecks(
        every, runtime, cache=cache, progress=progress, should_stop=should_stop, decoder=decoder,
        ray_address=ray_address,
    )  # fmt: skip
    row_of = {index: row for row, index in enumerate(result.kept)}
    features: dict[str, np.ndarray] = {}
    kept: dict[str, list[Any]] = {}
    offset = 0
    for name, records in splits.items():
        indices = [offset + i for i in range(len(records)) if offset + i in row_of]
        kept[name] = [every[i] for i in indices]
        features[name] = (
            result.features[[row_of[i] for i in indices]]
            if indices
            else np.zeros((0, runtime.backbone.feature_size), np.float32)
        )
        offset += len(records)
    return features, kept, result
