"""Decoding with TensorFlow: a tf.data pipeline for the `--runtime tensorflow` path.

Kept beside the PIL decoder for comparison and so the TensorFlow path is
TensorFlow end to end: parallel `decode_and_crop_jpeg` (only the central
square is decoded), the same central crop, TensorFlow's antialiased resize,
prefetch. Files it cannot take as they are (not JPEG, EXIF-rotated, or
failing to decode) go through PIL, so both decoders keep and skip the same
images.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.core.errors import ImageError
from engine.data.batches import DEFAULT_BATCH_SIZE, iter_prepared_batches
from engine.data.images import exif_orientation

if TYPE_CHECKING:
    from engine.models.registry import Backbone

# TensorFlow's names for PIL's resize filters (`engine.data.geometry.RESAMPLE`).
_TF_RESAMPLE = {
    "nearest": "nearest",
    "bilinear": "bilinear",
    "bicubic": "bicubic",
    "lanczos": "lanczos3",
    "box": "area",
    "area": "area",
}


def _tf_decodable(record: Any) -> bool:
    """Whether tf.io can decode a file exactly as `engine.data.images.load_image` does."""
    if str(getattr(record, "format", "JPEG")).upper() not in ("JPEG", "MPO"):
        return False
    try:
        # tf.io ignores EXIF orientation; such photos go through PIL.
        return exif_orientation(record.path) == 1
    except ImageError:
        return False  # PIL names the reason


def iter_tf_batches(
    records: Sequence[Any],
    backbone: Backbone,
    input_size: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
) -> Iterable[tuple[list[int], np.ndarray | None, list[tuple[int, str]]]]:
    """Decode, crop and resize records with a tf.data pipeline, in batches.

    JPEGs without EXIF rotation go through `tf.io.decode_and_crop_jpeg` (only
    the central square is decoded) and `tf.image.resize` with antialiasing, in
    parallel, prefetched. Every other record, and any the pipeline fails on,
    goes through PIL (`Backbone.load`) afterwards, which also gives the reason
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
        # tf.round halves to even, like Python's round() in geometry.prepare_image.
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
            return backbone.load(records[index].path, input_size)

        for positions, batch, failures in iter_prepared_batches(
            rest, load, batch_size=batch_size, workers=workers
        ):
            yield [rest[k] for k in positions], batch, [(rest[k], why) for k, why in failures]
