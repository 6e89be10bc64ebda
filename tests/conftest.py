"""The session's isolation and the fixtures every suite may use.

Every test session gets its own studio home, so tests never read or write a
user's runs, datasets or caches. Converted backbones are cached once per
session in it (`RETRAIN_STUDIO_CACHE`, shared even by tests that move their
home). Helpers live in tests/support/, not here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before any test imports TensorFlow: aiortc's SRTP library (the live camera, loaded by the
# Predict page in AppTests) segfaults when first loaded after it (see streamlit_app.py).
import pylibsrtp  # noqa: F401  # isort: skip

# How the tests are shared between the xdist workers (a hook, found here by pytest).
from tests.support.scheduling import pytest_xdist_make_scheduler  # noqa: F401  # isort: skip

# ---------------------------------------------------------------- the session's environment

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="retrain-studio-tests-"))
# Assigned, not defaulted: a user's own settings must never lead tests into
# their real runs, datasets or caches.
os.environ["RETRAIN_STUDIO_HOME"] = str(_SESSION_HOME)
os.environ["RETRAIN_STUDIO_CACHE"] = str(_SESSION_HOME / "cache")
for _name in ("RETRAIN_STUDIO_RUNS", "RETRAIN_STUDIO_DATASETS", "RETRAIN_STUDIO_DATA_ROOTS"):
    os.environ.pop(_name, None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty studio home for one test (runs, datasets); the model cache stays shared."""
    home = tmp_path / "studio"
    monkeypatch.setenv("RETRAIN_STUDIO_HOME", str(home))
    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(_SESSION_HOME / "cache"))
    return home


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """The session's one tiny trained run (`tests.support.tiny_model.train_tiny_run`); read-only.

    Training, CLI (label_image), export, inference and fast-path tests all
    read this run instead of each training their own; a test that needs other
    settings trains into a new run folder (see `tiny_config`).
    """
    from tests.support.tiny_model import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("tiny-run"))
