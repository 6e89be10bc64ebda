"""The bottleneck cache: features per image content hash, one SQLite file per feature key.

One file per feature key (backbone, input size, geometric preprocessing,
normalisation, weights) under `cache_dir()/bottlenecks`, one row per image
content hash (`ImageRecord.sha256`), so renaming or moving a photo keeps its
entry. Each row carries a CRC32 of its bytes: a damaged row is dropped and
recomputed. Rows are written in one transaction per batch, so a crash never
leaves half an entry.

A damaged file heals itself: when SQLite says the database is corrupt, not a
database, or cannot be read (what a crash or a full disk can leave in the file
or its `-wal` and `-shm`), or its quick check fails when the cache is opened,
the three files are moved aside (`engine.core.heal`, under a lock so that two
processes heal once) and the cache starts empty; its features are recomputed.
A full disk is a `StudioError` that says so; the transaction is rolled back,
so the cache stays as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from engine.core import heal
from engine.core.errors import StudioError
from engine.core.fsutil import file_lock
from engine.core.paths import cache_dir

if TYPE_CHECKING:
    from engine.models.registry import Backbone
    from engine.models.runtime import FeatureRuntime

CACHE_SUBDIR = "bottlenecks"
# 2: caches written by version 1 may hold features under other photos' keys
# (a run that met a partly warm cache stored new rows out of order, fixed with
# the data loop); a new key starts every cache afresh instead of trusting them.
_SCHEMA_VERSION = 2
# SQLite result codes (extended, as Python reports them): a write that failed (a full
# disk, a file size limit: SQLITE_FULL, SQLITE_IOERR_WRITE / _FSYNC / _DIR_FSYNC /
# _TRUNCATE) is the disk's problem; any other I/O error (a short read of a truncated
# file), SQLITE_CORRUPT and SQLITE_NOTADB mean the files are damaged.
_WRITE_FAILED_CODES = frozenset({13, 778, 1034, 1290, 1546})
_DAMAGE_CODES = frozenset({10, 11, 26})
SQLITE_COMPANIONS = ("-wal", "-shm")

T = TypeVar("T")


class _Damaged(sqlite3.DatabaseError):
    """The quick check found the file damaged (SQLite itself raised nothing)."""


def _is_damage(exc: sqlite3.Error) -> bool:
    if isinstance(exc, _Damaged):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code not in _WRITE_FAILED_CODES and (code & 0xFF) in _DAMAGE_CODES


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
        if self._empty_beside_its_log():
            # SQLite would silently start afresh and drop the log: say so, and keep both.
            self._heal(self._identity(), "the database file is empty but its write-ahead log is not")
        self._run(self._create, check=True)

    def _empty_beside_its_log(self) -> bool:
        try:
            log = self.path.with_name(self.path.name + "-wal").stat().st_size
            return self.path.stat().st_size == 0 and log > 0
        except OSError:
            return False

    @staticmethod
    def _create(db: sqlite3.Connection, check: bool = False) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS features ("
            "sha256 TEXT PRIMARY KEY, data BLOB NOT NULL, crc INTEGER NOT NULL)"
        )
        if check:
            (verdict,) = db.execute("PRAGMA quick_check(1)").fetchone()
            if verdict != "ok":
                raise _Damaged(str(verdict))

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
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    def _identity(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _run(self, action: Callable[..., T], **kwargs: object) -> T:
        """`action(db, **kwargs)` on a fresh connection; a damaged file is healed and tried once more."""
        for attempt in (1, 2):
            before = self._identity()
            try:
                with self._lock, contextlib.closing(self._connect()) as db:
                    return action(db, **kwargs)
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorcode", None) in _WRITE_FAILED_CODES:
                    raise StudioError(
                        f"could not write the bottleneck cache {self.path} ({exc}): the disk is "
                        "full or a file size limit was reached; free some space and start again "
                        "(the cache was left as it was)"
                    ) from exc
                if not _is_damage(exc) or attempt == 2:
                    raise
                self._heal(before, " ".join(str(exc).split()) or type(exc).__name__)
        raise AssertionError("unreachable")  # pragma: no cover

    def _heal(self, before: tuple[int, int] | None, reason: str) -> None:
        # Two processes can meet the same damage: the first moves it aside, the
        # second sees a different file under the lock and simply tries again.
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            if self._identity() != before:
                return
            heal.move_aside(
                self.path,
                what="the bottleneck cache",
                reason=reason[:200],
                companions=SQLITE_COMPANIONS,
            )

    def get_many(self, hashes: Iterable[str]) -> tuple[dict[str, np.ndarray], int]:
        """Look up features by image content hash.

        Args:
            hashes: image content hashes.

        Returns:
            `(found, damaged)`: the intact entries by hash, and how many entries
            failed their checksum or length check (those are deleted, so they
            are recomputed).
        """
        return self._run(self._get_many, wanted=list(dict.fromkeys(hashes)))

    def _get_many(self, db: sqlite3.Connection, wanted: list[str]) -> tuple[dict[str, np.ndarray], int]:
        self._create(db)  # the file may have been healed (moved aside) since this cache was opened
        found: dict[str, np.ndarray] = {}
        bad: list[str] = []
        expected_bytes = self.feature_size * 4
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
        return self._run(self._put_many, rows=rows)

    def _put_many(self, db: sqlite3.Connection, rows: list[tuple[str, bytes, int]]) -> int:
        self._create(db)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO features (sha256, data, crc) VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return len(rows)

    def __len__(self) -> int:
        return self._run(lambda db: int(db.execute("SELECT COUNT(*) FROM features").fetchone()[0]))
