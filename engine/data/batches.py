"""Decoding many photos at once: a thread pool a few batches ahead of the consumer.

PIL releases the GIL while it decodes and resamples, so a few threads keep a
consumer (a feature runtime, an exporter) fed with whole batches. A file that
cannot be decoded is reported with its reason; the rest go on.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from engine.core.errors import ImageError

DEFAULT_BATCH_SIZE = 32


def default_workers() -> int:
    """Decode threads for this machine: the CPU count, kept within 2 to 8."""
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
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
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
