"""What every AppTest needs: its own studio home, the session's shared datasets.

Each test gets a fresh, empty studio home (runs are per test), while the
deterministic demo dataset, slow to generate, is shared by the session
(`tests.support.app.share_datasets`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit import config

from tests.support.app import share_datasets


@pytest.fixture(autouse=True)
def _isolated_home(studio_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh studio home per test, with the session's shared datasets folder."""
    share_datasets(monkeypatch)
    return studio_home


@pytest.fixture
def listening_on() -> Iterator[Callable[[str | None], None]]:
    """Set `server.address` for the app under test (what `--server.address` sets); restored after."""
    before = config.get_option("server.address")
    yield lambda address: config.set_option("server.address", address)
    config.set_option("server.address", before)


@pytest.fixture
def exposed(listening_on, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The app on 0.0.0.0 with data roots and a password set; returns the password."""
    from ui import access

    monkeypatch.setenv("RETRAIN_STUDIO_DATA_ROOTS", str(tmp_path / "roots"))
    monkeypatch.setenv(access.PASSWORD_ENV, "visitor-password")
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY_S", 0.0)
    listening_on("0.0.0.0")
    return "visitor-password"
