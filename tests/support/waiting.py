"""Waiting for something another process or thread does: poll a condition against a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str | None = None,
) -> Any:
    """Poll `condition` until it returns something truthy, and return that; fail the test after `timeout` s.

    Args:
        condition: checked again and again.
        timeout: seconds before the test fails. Defaults to 30.
        interval: seconds between checks. Defaults to 0.05.
        what: what is waited for, for the failure message. Defaults to the condition's repr.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what or condition} not reached within {timeout}s")
        time.sleep(interval)
