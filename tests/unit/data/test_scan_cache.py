"""engine.data.scan_cache: a damaged scan cache is moved aside and rebuilt; a stale one replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.core import heal
from engine.data import scan_cache
from engine.data.scan import scan_dataset
from tests.support.factories import write_class_folders


@pytest.fixture
def scanned(tmp_path: Path) -> Path:
    root = write_class_folders(tmp_path / "data", {"a": 3, "b": 3}).resolve()
    assert scan_dataset(root).cache_hits == 0
    return root


def _entries(root: Path) -> dict:
    return json.loads(scan_cache.cache_file(root).read_text())["entries"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"\x00" * len(data),
        lambda data: b"[]",
        lambda data: data.replace(b'"ok"', b'"??"', 1),
        lambda data: data.replace(b'"entries":{', b'"entries":{"x":7,', 1),
    ],
    ids=["truncated", "zeros", "not-an-object", "bad-result", "bad-entry"],
)
def test_a_damaged_scan_cache_is_moved_aside_and_rebuilt(scanned: Path, damage) -> None:
    path = scan_cache.cache_file(scanned)
    good = _entries(scanned)
    broken = damage(path.read_bytes())
    path.write_bytes(broken)
    heard: list[heal.Damage] = []
    with heal.listening(heard.append):
        again = scan_dataset(scanned)
    assert again.cache_hits == 0 and len(again.images) == 6  # every file checked again
    assert _entries(scanned) == good  # and the cache written anew
    [found] = heard
    assert found.what == "the scan cache" and Path(found.moved_to[0]).read_bytes() == broken
    assert scan_dataset(scanned).cache_hits == 6


def test_another_version_of_the_cache_is_replaced_not_called_damaged(scanned: Path) -> None:
    path = scan_cache.cache_file(scanned)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": 999}))
    heard: list[heal.Damage] = []
    with heal.listening(heard.append):
        assert scan_dataset(scanned).cache_hits == 0
    assert heard == [] and not list(path.parent.glob(f"{path.name}{heal.DAMAGED_MARK}*"))
    assert json.loads(path.read_text())["version"] == scan_cache.SCAN_CACHE_VERSION
