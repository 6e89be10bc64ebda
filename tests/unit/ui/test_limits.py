"""ui.limits.within_limits: which uploads Predict takes, and what it says about the others."""

from __future__ import annotations

from types import SimpleNamespace

from ui.limits import MIB, within_limits


def upload(name: str, megabytes: float) -> SimpleNamespace:
    return SimpleNamespace(name=name, size=int(megabytes * MIB))


def test_everything_within_the_limits_is_kept_without_a_message() -> None:
    files = [upload("a.jpg", 1), upload("b.jpg", 2)]
    assert within_limits(files, max_count=2, max_mb=2) == (files, [])


def test_too_large_photos_are_skipped_by_name_and_the_count_applies_to_the_rest() -> None:
    files = [upload("big.jpg", 3), upload("a.jpg", 1), upload("b.jpg", 1), upload("c.jpg", 1)]
    kept, messages = within_limits(files, max_count=2, max_mb=2)
    assert [f.name for f in kept] == ["a.jpg", "b.jpg"]
    assert len(messages) == 2
    assert messages[0].startswith("big.jpg is 3.0 MB, over the 2 MB limit")
    assert messages[1].startswith("3 photos uploaded; only the first 2 are predicted")
