"""The restricted pickle reader: plain data reads back; calls, BUILDs and blow-ups are refused."""

from __future__ import annotations

import io
import pickle
from typing import Any

import pytest

from engine.models.restricted_pickle import (
    Constructor,
    MalformedPickleError,
    PickleLimits,
    UnsafePickleError,
    load,
)


def _load(data: bytes, **hooks: Any) -> Any:
    return load(io.BytesIO(data), **hooks)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, None, True], "b": ("x", -(2**70)), "": {}},
        [[], (), {"k": ["deep", ["er"]]}],
        "text é",
    ],
    ids=["dict", "nested", "str"],
)
def test_plain_data_reads_back_as_the_stock_unpickler_reads_it(value: Any, protocol: int) -> None:
    data = pickle.dumps(value, protocol=protocol)
    assert _load(data) == pickle.loads(data)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_bytes_read_back(protocol: int) -> None:
    assert _load(pickle.dumps([b"raw", b"x" * 300], protocol=protocol)) == [b"raw", b"x" * 300]


def test_the_handle_is_left_after_the_stop() -> None:
    handle = io.BytesIO(pickle.dumps(1, protocol=2) + pickle.dumps("two", protocol=2))
    assert load(handle) == 1
    assert load(handle) == "two"


def test_a_global_is_refused_without_find_global() -> None:
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        _load(b"\x80\x02ccollections\nOrderedDict\n)R.")


def test_reduce_calls_only_constructors() -> None:
    calls: list[tuple[Any, ...]] = []

    def find_global(module: str, name: str) -> Any:
        if name == "make":
            return Constructor("make", lambda *args: calls.append(args) or "made")
        return "a marker"

    assert _load(b"\x80\x02cm\nmake\nK\x01K\x02\x86R.", find_global=find_global) == "made"
    assert calls == [(1, 2)]
    with pytest.raises(UnsafePickleError, match="not an allowed constructor"):
        _load(b"\x80\x02cm\nother\n)R.", find_global=find_global)


def test_build_is_refused_without_a_hook() -> None:
    with pytest.raises(UnsafePickleError, match="BUILD"):
        _load(b"\x80\x02]}b.")


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02(cos\nsystem\nX\x02\x00\x00\x00lso.",  # INST-like: OBJ
        b"\x80\x02(X\x01\x00\x00\x00ai__main__\nC\n.",  # INST
        b"\x80\x02\x8f(K\x01\x90.",  # EMPTY_SET + ADDITEMS
        b"\x80\x02\x82\x01\x00.",  # EXT1
    ],
    ids=["OBJ", "INST", "set", "EXT1"],
)
def test_instructions_a_weights_file_never_needs_are_refused(data: bytes) -> None:
    with pytest.raises((UnsafePickleError, MalformedPickleError)):
        _load(data, find_global=lambda m, n: "marker")


def test_a_dict_key_that_is_a_container_is_refused() -> None:
    # Hashing a tuple that shares itself n times takes 2**n steps in C.
    data = pickle.dumps({(1, 2): "v"}, protocol=2)
    with pytest.raises(UnsafePickleError, match="dict key is a tuple"):
        _load(data)


def test_nesting_past_the_limit_is_refused() -> None:
    nested: list[Any] = []
    for _ in range(10):
        nested = [nested]
    with pytest.raises(MalformedPickleError, match="deeper than 5"):
        _load(pickle.dumps(nested, protocol=2), limits=PickleLimits(max_depth=5))


def test_a_hundred_thousand_levels_are_refused_without_recursion() -> None:
    data = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    with pytest.raises(MalformedPickleError, match="deeper than 32"):
        _load(data)


def test_shared_references_past_the_limit_are_refused() -> None:
    shared = ["s"]
    data = pickle.dumps([shared] * 5, protocol=2)
    assert _load(data, limits=PickleLimits(max_shared_references=4)) == [shared] * 5
    with pytest.raises(MalformedPickleError, match="more than 3 shared references"):
        _load(data, limits=PickleLimits(max_shared_references=3))


def test_instructions_past_the_limit_are_refused() -> None:
    data = pickle.dumps(list(range(50)), protocol=2)
    with pytest.raises(MalformedPickleError, match="more than 20 pickle instructions"):
        _load(data, limits=PickleLimits(max_instructions=20))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\x02", b"\x80\x02]", b"\x80\x02a.", b"\x80\x02h\x05.", b"\x80\x02K\x01K\x02.", b"\xff."],
    ids=["empty", "no-stop", "unterminated", "append-on-empty", "unknown-memo", "two-left", "bad-op"],
)
def test_malformed_bytes_are_a_malformed_pickle_error(data: bytes) -> None:
    with pytest.raises(MalformedPickleError):
        _load(data)
