"""Shared test setup.

Every test session gets its own studio home, so tests never read or write a
user's runs or caches. Converted backbones are cached once per session in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="retrain-studio-tests-"))
SESSION_CACHE = _SESSION_HOME / "cache"
# Assigned, not defaulted: a user's own settings must never lead tests into
# their real runs, datasets or caches.
os.environ["RETRAIN_STUDIO_HOME"] = str(_SESSION_HOME)
for _name in ("RETRAIN_STUDIO_RUNS", "RETRAIN_STUDIO_CACHE", "RETRAIN_STUDIO_DATASETS"):
    os.environ.pop(_name, None)
os.environ.pop("RETRAIN_STUDIO_DATA_ROOTS", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty studio home for one test (runs, datasets); the model cache stays shared."""
    home = tmp_path / "studio"
    monkeypatch.setenv("RETRAIN_STUDIO_HOME", str(home))
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(SESSION_CACHE))
    return home


def run_engine(
    *args: str, home: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `python -m engine ARGS` in a subprocess, as a user would.

    Args:
        args: the command line after `python -m engine`.
        home: a studio home for the run's runs and datasets; the converted
            models stay in the session's cache so no test converts twice.
            Defaults to None (the current environment's).
        timeout: seconds before the test fails. Defaults to 600.

    Returns:
        The finished process, output captured as text.
    """
    env = dict(os.environ)
    if home is not None:
        env["RETRAIN_STUDIO_HOME"] = str(home)
        env["RETRAIN_STUDIO_CACHE"] = str(SESSION_CACHE)
        env.pop("RETRAIN_STUDIO_RUNS", None)
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
