"""Running `python -m engine ...` the way a user does, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


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
    from engine.core.paths import cache_dir

    env = dict(os.environ)
    if home is not None:
        env["RETRAIN_STUDIO_CACHE"] = str(cache_dir())  # before HOME moves: the session's cache
        env["RETRAIN_STUDIO_HOME"] = str(home)
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
