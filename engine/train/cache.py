"""The bottleneck cache: features per image content hash, one SQLite file per feature key.

One file per feature key (backbone, input size, geometric preprocessing,
normalisation, weights) under `cache_dir()/bottlenecks`, one row per image
content hash (`ImageRecord.sha256`), so renaming or moving a photo keeps its
entry. Each row carries a CRC32 of its bytes: a damaged row is dropped and
recomputed. Rows are written in one transaction per batch, so a crash never
leaves half an entry.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.core.paths import cache_dir

if TYPE_CHECKING:
    from engine.models.registry import Backbone
    from engine.models.runtime import FeatureRuntime

CACHE_SUBDIR = "bottlenecks"
_SCHEMA_VERSION = 1


def feature_key(
    backbone: Backbone, input_size: int, *, weights: str = "imagenet", decoder: str = "pil"
) -> str:
    """The cache key of a backbone's features: what changes them changes the key.

    Args:
        backbone: the `engine.models.registry.Backbone`.
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
        runtime: FeatureRuntime,
        root: str | os.PathLike[str] | None = None,
        *,
        weights: str = "imagenet",
        decoder: str = "pil",
    ) -> BottleneckCache:
        """The cache for a feature runtime's backbone and input size.

        Args:
            runtime: the feature runtime (`engine.models.loading.load_feature_runtime`).
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
