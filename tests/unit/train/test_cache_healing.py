"""The bottleneck cache heals itself: a damaged database (or -wal / -shm) is moved aside and rebuilt.

A crash can leave the SQLite files as they were mid-write; here a child process
writes rows and dies with its connection open (`os._exit`), as a killed
training does, and then the files are truncated or overwritten.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.core import heal
from engine.train.cache import BottleneckCache
from tests.support.cli import REPO_ROOT

SIZE = 64
ROWS = 300

_WRITE_AND_DIE = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from engine.train.cache import BottleneckCache
    cache = BottleneckCache(sys.argv[1], {size})
    cache.put_many((f"old{{i}}", np.full({size}, i, np.float32)) for i in range({rows}))
    import gc; gc.collect()  # the first rows reach the database file itself
    held = cache._connect()  # a connection still open when the process dies
    cache.put_many((f"new{{i}}", np.full({size}, i, np.float32)) for i in range(50))
    os._exit(0)
    """
).format(size=SIZE, rows=ROWS)


def _crashed_cache(folder: Path) -> Path:
    path = folder / "features.sqlite"
    subprocess.run([sys.executable, "-c", _WRITE_AND_DIE, str(path)], cwd=REPO_ROOT, check=True)
    assert Path(f"{path}-wal").stat().st_size > 0, "the crash should leave a write-ahead log"
    return path


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    if how == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(size))
    else:
        with open(path, "r+b") as handle:
            handle.truncate({"half": size // 2, "header": 100, "empty": 0}[how])


def _hashes() -> list[str]:
    return [f"old{i}" for i in range(ROWS)] + [f"new{i}" for i in range(50)]


@pytest.mark.parametrize(
    ("files", "how"),
    [
        (("",), "half"),
        (("",), "header"),
        (("",), "garbage"),
        (("",), "empty"),
        (("", "-wal"), "half"),
        (("", "-wal", "-shm"), "garbage"),
    ],
    ids=["db-half", "db-header", "db-garbage", "db-empty", "db+wal-half", "all-garbage"],
)
def test_a_damaged_database_is_moved_aside_and_the_cache_starts_afresh(
    tmp_path: Path, files: tuple[str, ...], how: str
) -> None:
    path = _crashed_cache(tmp_path)
    originals = {suffix: Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")}
    for suffix in files:
        _damage(originals[suffix], how)
    left = {s: p.read_bytes() for s, p in originals.items()}
    heard: list[heal.Damage] = []
    with heal.listening(heard.append):
        cache = BottleneckCache(path, SIZE)
        found, damaged = cache.get_many(_hashes())
        assert cache.put_many([("fresh", np.ones(SIZE, np.float32))]) == 1
    assert (found, damaged) == ({}, 0)
    assert len(cache) == 1
    [damage] = heard
    assert damage.what == "the bottleneck cache" and damage.path == str(path)
    # Nothing deleted: the damaged database is kept beside the new one (SQLite may first have
    # replayed the write-ahead log into it, its own recovery; whatever log is left goes along).
    kept = {Path(p).name.split(heal.DAMAGED_MARK)[0]: Path(p) for p in damage.moved_to}
    assert "features.sqlite" in kept
    assert sum(p.stat().st_size for p in kept.values()) > 0
    if how == "empty":  # SQLite would have dropped the log silently: both are kept as they were
        assert kept["features.sqlite-wal"].read_bytes() == left["-wal"]


@pytest.mark.parametrize("companion", ["-wal", "-shm"])
def test_a_damaged_log_alone_loses_at_most_the_rows_it_held(tmp_path: Path, companion: str) -> None:
    # SQLite checks the log's frames itself and drops the torn ones: no error, nothing moved.
    path = _crashed_cache(tmp_path)
    _damage(Path(f"{path}{companion}"), "garbage")
    found, damaged = BottleneckCache(path, SIZE).get_many(_hashes())
    assert damaged == 0
    assert {f"old{i}" for i in range(ROWS)} <= set(found)
    np.testing.assert_array_equal(found["old7"], np.full(SIZE, 7, np.float32))
    assert not list(tmp_path.glob(f"*{heal.DAMAGED_MARK}*"))


def test_damage_met_after_opening_is_healed_on_the_next_call(tmp_path: Path) -> None:
    cache = BottleneckCache(tmp_path / "f.sqlite", SIZE)
    cache.put_many((f"h{i}", np.full(SIZE, i, np.float32)) for i in range(ROWS))
    _damage(cache.path, "garbage")
    assert cache.get_many(["h1"]) == ({}, 0)
    assert cache.put_many([("h1", np.ones(SIZE, np.float32))]) == 1
    assert len(list(tmp_path.glob(f"f.sqlite{heal.DAMAGED_MARK}*"))) == 1


def test_two_processes_meeting_the_same_damage_move_it_aside_once(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    cache = BottleneckCache(path, SIZE)
    cache.put_many((f"h{i}", np.full(SIZE, i, np.float32)) for i in range(ROWS))
    del cache
    _damage(path, "garbage")
    code = (
        "import sys, numpy as np\n"
        "from engine.train.cache import BottleneckCache\n"
        f"c = BottleneckCache(sys.argv[1], {SIZE})\n"
        f"c.put_many([(sys.argv[2], np.ones({SIZE}, np.float32))])\n"
        "print(len(c.get_many([sys.argv[2]])[0]))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path), f"p{n}"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outputs == ["1", "1", "1"]
    assert len(list(tmp_path.glob(f"f.sqlite{heal.DAMAGED_MARK}*"))) == 1
    assert len(BottleneckCache(path, SIZE)) == 3


def test_a_full_disk_is_a_clear_error_and_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    cache = BottleneckCache(path, SIZE)
    cache.put_many((f"h{i}", np.full(SIZE, i, np.float32)) for i in range(10))
    code = textwrap.dedent(
        f"""
        import resource, sys, numpy as np
        from engine.core.errors import StudioError
        from engine.train.cache import BottleneckCache
        cache = BottleneckCache(sys.argv[1], {SIZE})
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        try:
            cache.put_many((f"big{{i}}", np.ones({SIZE}, np.float32)) for i in range(5000))
        except StudioError as exc:
            print("error:", exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "disk is full" in proc.stdout and str(path) in proc.stdout
    found, damaged = BottleneckCache(path, SIZE).get_many([f"h{i}" for i in range(10)] + ["big0"])
    assert sorted(found) == sorted(f"h{i}" for i in range(10)) and damaged == 0
    assert not list(tmp_path.glob(f"*{heal.DAMAGED_MARK}*"))


def test_an_unrelated_error_is_not_taken_for_damage(tmp_path: Path) -> None:
    cache = BottleneckCache(tmp_path / "f.sqlite", SIZE)
    with pytest.raises(ValueError, match="values"):
        cache.put_many([("h", np.ones(3, np.float32))])
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        BottleneckCache(tmp_path, SIZE)  # a folder is not a database file
    assert not list(tmp_path.glob(f"*{heal.DAMAGED_MARK}*"))
