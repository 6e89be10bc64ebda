"""Bottlenecks: the frozen backbone's features for every image, cached on disk.

retrain.py called the network once per image and kept one text file per image.
Here decoding and resizing run in a thread pool (PIL releases the GIL while it
decodes and resamples; large JPEGs decode in draft mode at a reduced scale) a
few batches ahead of the feature runtime, which sees whole batches. A runtime
with `concurrency` above 1 (LiteRT: one interpreter per core on a small
machine) gets that many batches at once; LiteRT releases the GIL while it
computes, so decoding, inference and cache writes overlap.

`decoder="tf"` swaps the PIL decode for a `tf.data` pipeline (parallel
`decode_and_crop_jpeg`, the same central crop, TensorFlow's antialiased resize,
prefetch): the TensorFlow path, kept for comparison and for `--runtime
tensorflow`. Files it cannot take as they are (not JPEG, EXIF-rotated, or
failing to decode) go through PIL, so both decoders keep and skip the same
images.

The cache is one SQLite file per feature key (backbone, input size, geometric
preprocessing, normalisation, weights) under `cache_dir()/bottlenecks`, one row
per image content hash (`ImageRecord.sha256`), so renaming or moving a photo
keeps its entry. Each row carries a CRC32 of its bytes: a damaged row is
dropped and recomputed. Rows are written in one transaction per batch, so a
crash never leaves half an entry.
"""

from __future__ import annotations

import collections
import hashlib
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.errors import ImageError, StudioError
from engine.paths import cache_dir
from engine.progress import ProgressCallback, ProgressTracker

DEFAULT_BATCH_SIZE = 32
DECODERS = ("pil", "tf")
# TensorFlow's names for PIL's resize filters (`engine.images.RESAMPLE`).
_TF_RESAMPLE = {
    "nearest": "nearest",
    "bilinear": "bilinear",
    "bicubic": "bicubic",
    "lanczos": "lanczos3",
    "box": "area",
    "area": "area",
}
CACHE_SUBDIR = "bottlenecks"
_SCHEMA_VERSION = 1


class _Backbone(Protocol):
    name: str
    crop_fraction: float
    resample: str
    normalization: str
    weights_source: str
    feature_size: int

    def prepare(self, image: Any, size: int | None = None) -> np.ndarray: ...


class FeatureRuntimeLike(Protocol):
    """What this module needs of `engine.backbones.FeatureRuntime`."""

    runtime: str
    backbone: _Backbone
    input_size: int

    def features(self, batch_uint8: np.ndarray) -> np.ndarray: ...


def feature_key(
    backbone: _Backbone, input_size: int, *, weights: str = "imagenet", decoder: str = "pil"
) -> str:
    """The cache key of a backbone's features: what changes them changes the key.

    Args:
        backbone: the `engine.backbones.Backbone`.
        input_size: the side the images are resized to.
        weights: which weights produced the features. Defaults to "imagenet".
        decoder: which decoder made the network's input ("pil" or "tf"); the
            two differ by rounding, so their features are kept apart.
            Defaults to "pil".

    Returns:
        A file-name-safe key such as `efficientnet_lite0-224-3f9a0c12d4`.
    """
    identity = "|".join(
        str(part)
        for part in (
            _SCHEMA_VERSION,
            backbone.name,
            input_size,
            backbone.crop_fraction,
            backbone.resample,
            backbone.normalization,
            backbone.weights_source,
            backbone.feature_size,
            weights,
            # Only a non-default decoder joins the key, so existing caches stay valid.
            *((decoder,) if decoder != "pil" else ()),
        )
    )
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:10]
    return f"{backbone.name}-{input_size}-{digest}"


class BottleneckCache:
    """Features per image content hash for one feature key, in one SQLite file.

    Safe to share between threads and processes (SQLite locking; each call
    opens its own short transaction).

    Args:
        path: the SQLite file; its folder is created if missing.
        feature_size: the length of each feature vector.
    """

    def __init__(self, path: str | os.PathLike[str], feature_size: int) -> None:
        if feature_size <= 0:
            raise ValueError(f"feature_size={feature_size!r} is not allowed; give a positive length")
        self.path = Path(path)
        self.feature_size = int(feature_size)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS features ("
                "sha256 TEXT PRIMARY KEY, data BLOB NOT NULL, crc INTEGER NOT NULL)"
            )

    @classmethod
    def for_runtime(
        cls,
        runtime: FeatureRuntimeLike,
        root: str | os.PathLike[str] | None = None,
        *,
        weights: str = "imagenet",
        decoder: str = "pil",
    ) -> BottleneckCache:
        """The cache for a feature runtime's backbone and input size.

        Args:
            runtime: the feature runtime (`engine.backbones.load_feature_runtime`).
            root: the folder holding caches (retrain.py's `--bottleneck_dir`).
                Defaults to `cache_dir()/bottlenecks`.
            weights: which weights the runtime uses. Defaults to "imagenet".
            decoder: the decoder `extract_bottlenecks` will use. Defaults to "pil".

        Returns:
            The cache.
        """
        folder = Path(root) if root is not None else cache_dir() / CACHE_SUBDIR
        key = feature_key(runtime.backbone, runtime.input_size, weights=weights, decoder=decoder)
        return cls(folder / f"{key}.sqlite", runtime.backbone.feature_size)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def get_many(self, hashes: Iterable[str]) -> tuple[dict[str, np.ndarray], int]:
        """Look up features by image content hash.

        Args:
            hashes: image content hashes.

        Returns:
            `(found, damaged)`: the intact entries by hash, and how many entries
            failed their checksum or length check (those are deleted, so they
            are recomputed).
        """
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        bad: list[str] = []
        expected_bytes = self.feature_size * 4
        with self._lock, self._connect() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT sha256, data, crc FROM features WHERE sha256 IN ({marks})", chunk
                ).fetchall()
                for sha, data, crc in rows:
                    if len(data) != expected_bytes or zlib.crc32(data) != crc:
                        bad.append(sha)
                        continue
                    found[sha] = np.frombuffer(data, dtype="<f4").copy()
            if bad:
                db.executemany("DELETE FROM features WHERE sha256 = ?", [(s,) for s in bad])
        return found, len(bad)

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> int:
        """Store features in one transaction (all or nothing).

        Args:
            items: `(content hash, feature vector)` pairs.

        Returns:
            How many entries were written.

        Raises:
            ValueError: when a vector's length is not `feature_size`.
        """
        rows = []
        for sha, vector in items:
            data = np.asarray(vector, dtype="<f4").reshape(-1)
            if data.size != self.feature_size:
                raise ValueError(
                    f"feature vector for {sha} has {data.size} values; expected {self.feature_size}"
                )
            blob = data.tobytes()
            rows.append((sha, blob, zlib.crc32(blob)))
        if not rows:
            return 0
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO features (sha256, data, crc) VALUES (?, ?, ?)", rows
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(rows)

    def __len__(self) -> int:
        with self._lock, self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM features").fetchone()[0])


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
    """

    features: np.ndarray
    kept: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cached: int = 0
    computed: int = 0
    damaged: int = 0
    seconds: float = 0.0


def load_prepared(record: Any, backbone: _Backbone, input_size: int) -> np.ndarray:
    """Decode one image record and apply the backbone's geometric preprocessing.

    Args:
        record: an `ImageRecord` (its `path` is read).
        backbone: the backbone whose crop and resample rules apply.
        input_size: the output side.

    Returns:
        uint8 `(input_size, input_size, 3)`.

    Raises:
        ImageError: when the file cannot be decoded.
    """
    from engine import images

    image = min_side = images.draft_min_side(input_size, backbone.crop_fraction)
    image = images.load_image(record.path, min_side=min_side)
    return backbone.prepare(image, size=input_size)


def _default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def iter_prepared_batches(
    records: Sequence[Any],
    load: Callable[[Any], np.ndarray],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
) -> Iterable[tuple[list[int], np.ndarray | None, list[tuple[int, str]]]]:
    """Decode records in a thread pool, a few batches ahead, and yield them in batches.

    Args:
        records: what to load, in order.
        load: turns one record into a uint8 image array (may raise `ImageError`).
        batch_size: images per batch. Defaults to 32.
        workers: decode threads. Defaults to the CPU count (2 to 8).

    Yields:
        `(indices, batch, failures)`: the indices of `records` in the batch, the
        stacked arrays (None if all failed), and `(index, reason)` per failure.
    """
    ahead = batch_size * 3
    with ThreadPoolExecutor(max_workers=workers or _default_workers()) as pool:
        pending: collections.deque[tuple[int, Future[np.ndarray]]] = collections.deque()
        next_index = 0

        def top_up() -> None:
            nonlocal next_index
            while next_index < len(records) and len(pending) < ahead:
                pending.append((next_index, pool.submit(load, records[next_index])))
                next_index += 1

        top_up()
        while pending:
            indices: list[int] = []
            arrays: list[np.ndarray] = []
            failures: list[tuple[int, str]] = []
            while pending and len(indices) + len(failures) < batch_size:
                index, future = pending.popleft()
                try:
                    arrays.append(future.result())
                    indices.append(index)
                except ImageError as exc:
                    failures.append((index, exc.reason))
                top_up()
            yield indices, (np.stack(arrays) if arrays else None), failures


def _tf_decodable(record: Any) -> bool:
    """Whether tf.io can decode a file exactly as `engine.images.load_image` does."""
    from engine import images

    if str(getattr(record, "format", "JPEG")).upper() not in ("JPEG", "MPO"):
        return False
    try:
        # tf.io ignores EXIF orientation; such photos go through PIL.
        return images.exif_orientation(record.path) == 1
    except ImageError:
        return False  # PIL names the reason


def iter_tf_batches(
    records: Sequence[Any],
    backbone: _Backbone,
    input_size: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
) -> Iterable[tuple[list[int], np.ndarray | None, list[tuple[int, str]]]]:
    """Decode, crop and resize records with a tf.data pipeline, in batches.

    JPEGs without EXIF rotation go through `tf.io.decode_and_crop_jpeg` (only
    the central square is decoded) and `tf.image.resize` with antialiasing, in
    parallel, prefetched. Every other record, and any the pipeline fails on,
    goes through PIL (`load_prepared`) afterwards, which also gives the reason
    when a file cannot be used at all.

    Args:
        records: `ImageRecord`s (need `path`; `format` when known).
        backbone: the backbone whose crop and resample rules apply.
        input_size: the output side.
        batch_size: images per batch. Defaults to 32.
        workers: decode threads for the PIL remainder. Defaults to the CPU count (2 to 8).

    Yields:
        `(indices, batch, failures)` as `iter_prepared_batches`.
    """
    import tensorflow as tf

    if backbone.resample not in _TF_RESAMPLE:
        raise ValueError(
            f"resample={backbone.resample!r} has no TensorFlow equivalent; use one of {sorted(_TF_RESAMPLE)}"
        )
    by_tf = [i for i, record in enumerate(records) if _tf_decodable(record)]
    crop_fraction = float(backbone.crop_fraction)
    method = _TF_RESAMPLE[backbone.resample]

    def decode(index: Any, path: Any) -> tuple[Any, Any]:
        data = tf.io.read_file(path)
        shape = tf.io.extract_jpeg_shape(data)
        height, width = shape[0], shape[1]
        short = tf.cast(tf.minimum(height, width), tf.float64)
        # tf.round halves to even, like Python's round() in images.prepare_image.
        side = tf.maximum(1, tf.cast(tf.round(short * crop_fraction), tf.int32))
        window = tf.stack([(height - side) // 2, (width - side) // 2, side, side])
        # INTEGER_ACCURATE is libjpeg's ISLOW, what PIL decodes with.
        square = tf.io.decode_and_crop_jpeg(data, window, channels=3, dct_method="INTEGER_ACCURATE")
        resized = tf.image.resize(square, (input_size, input_size), method=method, antialias=True)
        return index, tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    seen: set[int] = set()
    if by_tf:
        pipeline = (
            tf.data.Dataset.from_tensor_slices(
                (np.asarray(by_tf, np.int64), [str(records[i].path) for i in by_tf])
            )
            .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .ignore_errors()  # those are retried through PIL below
            .batch(batch_size)
            .prefetch(2)
        )
        for indices, batch in pipeline.as_numpy_iterator():
            chosen = [int(i) for i in indices]
            seen.update(chosen)
            yield chosen, batch, []
    rest = [i for i in range(len(records)) if i not in seen]
    if rest:

        def load(index: int) -> np.ndarray:
            return load_prepared(records[index], backbone, input_size)

        for positions, batch, failures in iter_prepared_batches(
            rest, load, batch_size=batch_size, workers=workers
        ):
            yield [rest[k] for k in positions], batch, [(rest[k], why) for k, why in failures]


def extract_bottlenecks(
    records: Sequence[Any],
    runtime: FeatureRuntimeLike,
    *,
    cache: BottleneckCache | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    decoder: str = "pil",
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

    Returns:
        A `BottleneckResult`.

    Raises:
        ValueError: when `batch_size` is not positive or `decoder` is unknown.
        StudioError: when stopped through `should_stop`.
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
    if decoder == "tf":
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
            return load_prepared(records[index], runtime.backbone, runtime.input_size)

        batches = iter_prepared_batches(missing, load, batch_size=batch_size, workers=workers)

    def finish(indices: list[int], features: np.ndarray) -> None:
        out[indices] = features
        have[indices] = True
        result.computed += len(indices)
        if cache is not None:
            cache.put_many((records[i].sha256, features[k]) for k, i in enumerate(indices))
        tracker.advance(
            len(indices), cached=result.cached, computed=result.computed, skipped=len(result.skipped)
        )

    parallel = max(1, int(getattr(runtime, "concurrency", 1) or 1))
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
    runtime: FeatureRuntimeLike,
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
