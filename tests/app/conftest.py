"""What every AppTest needs: its own studio home, the session's shared datasets.

Each test gets a fresh, empty studio home (runs are per test), while the
deterministic demo dataset, slow to generate, is shared by the session
(`tests.support.app.share_datasets`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app import share_datasets


@pytest.fixture(autouse=True)
def _isolated_home(studio_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh studio home per test, with the session's shared datasets folder."""
    share_datasets(monkeypatch)
    return studio_home
