"""The README's example for scripts and notebooks runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.paths import cache_dir
from tests.support.cli import REPO_ROOT


def _python_blocks(section: str) -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.DOTALL)


@pytest.mark.slow
def test_the_public_api_example_runs(tmp_path: Path) -> None:
    example, notebook = _python_blocks("From a script or a notebook")
    assert "%tensorboard --logdir {engine.runs_dir()}" in notebook
    env = dict(os.environ, RETRAIN_STUDIO_HOME=str(tmp_path / "home"))
    env["RETRAIN_STUDIO_CACHE"] = str(cache_dir())  # the session's converted backbone
    result = subprocess.run(
        [sys.executable, "-c", example + "\nprint('runs', engine.runs_dir())\n"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^test accuracy \d+\.\d%, run folder .*", result.stdout, re.MULTILINE)
    assert re.search(r"^\[\('\w+', 0\.\d+\)", result.stdout, re.MULTILINE)  # top_k pairs
    assert f"runs {tmp_path / 'home' / 'runs'}" in result.stdout
