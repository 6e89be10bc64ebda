"""ui.lifecycle: installed once per process; its exit hook stops the servers this process owns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import REPO_ROOT

# atexit runs hooks last-registered first: the report hook, registered before
# install(), runs after the hook install() registers.
SCRIPT = """
import atexit, os
from ui import lifecycle
stopped = []
lifecycle.stop_owned_tensorboards = lambda owner: stopped.append(owner) or 0
atexit.register(lambda: print("stopped for", stopped, "pid", os.getpid()))
print(lifecycle.install(), lifecycle.install())
"""


def test_install_runs_once_per_process_and_its_exit_hook_stops_what_the_process_owns(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "RETRAIN_STUDIO_HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    first, last = out.stdout.strip().splitlines()
    assert first == "True False"
    stopped, pid = last.removeprefix("stopped for ").split(" pid ")
    assert stopped == f"[{pid}]"  # exactly once, for this process
