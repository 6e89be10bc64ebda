"""`python -m engine`: the command table and its help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_cli_without_command_prints_help_and_exits_2(tmp_path: Path) -> None:
    # the engine is an installed package: it runs from any folder, no PYTHONPATH needed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-m", "engine"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 2
    assert "usage: python -m engine" in out.stdout
