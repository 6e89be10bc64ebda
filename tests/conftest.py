"""Shared test setup.

Every test session gets its own studio home, so tests never read or write a
user's runs or caches. Converted backbones are cached once per session in it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="retrain-studio-tests-"))
os.environ.setdefault("RETRAIN_STUDIO_HOME", str(_SESSION_HOME))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.pop("RETRAIN_STUDIO_DATA_ROOTS", None)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty studio home for one test (runs, datasets); the model cache stays shared."""
    home = tmp_path / "studio"
    monkeypatch.setenv("RETRAIN_STUDIO_HOME", str(home))
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(_SESSION_HOME / "cache"))
    return home
