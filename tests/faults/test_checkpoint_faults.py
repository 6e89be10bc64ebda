"""Hostile checkpoints (issue 10, item 3): each crafted file of the issue, the CLI, and a fuzzer.

Every read runs in a child process with a timeout, so a reader that crashes
(the BUILD resize segfaulted) or hangs (shared references took minutes) fails
the test instead of taking pytest down with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import checkpoints
from tests.support.cli import REPO_ROOT, run_engine

_CHILD = """
import json, sys
from engine.core.errors import StudioError
from engine.models.torch_checkpoint import read_legacy_checkpoint
try:
    state = read_legacy_checkpoint(sys.argv[1])
    print(json.dumps({"read": {k: list(v.shape) for k, v in state.items()}}))
except StudioError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def read_in_child(path: Path, timeout: float = 60.0) -> dict:
    """The reader's outcome on `path`, from a child process; fails on a crash or a hang."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"the reader died (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


CRAFTED: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # name: (file maker, error class, what the message says)
    "build-resizes-past-memory": (
        lambda: checkpoints.crafted_build_resize(10**9),
        "UnsafeCheckpointError",
        "BUILD",
    ),
    "build-resizes-past-storage": (
        lambda: checkpoints.crafted_build_resize(64),
        "UnsafeCheckpointError",
        "BUILD",
    ),
    "shared-references": (
        lambda: checkpoints.crafted_shared_references(26),
        "CheckpointFormatError",
        "not a tensor",
    ),
    "deep-nesting": (checkpoints.crafted_deep_nesting, "CheckpointFormatError", "nest deeper"),
    "elements-past-storage": (checkpoints.crafted_huge_elements, "CheckpointFormatError", "elements"),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_checkpoint_is_a_clean_error_naming_the_file(tmp_path: Path, name: str) -> None:
    make, error, needle = CRAFTED[name]
    path = tmp_path / f"{name}.pth"
    path.write_bytes(make())
    outcome = read_in_child(path)
    assert outcome.get("error") == error, outcome
    assert outcome["message"].startswith(f"{path}: ")
    assert needle in outcome["message"]


def test_shared_references_file_is_a_few_hundred_bytes() -> None:
    # The case: a tiny file that took the old reader 20+ s (2**levels paths to walk).
    assert len(checkpoints.crafted_shared_references(26)) < 700


def test_the_hand_written_checkpoint_reads_in_a_child_too(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    path.write_bytes(checkpoints.legacy_checkpoint())
    assert read_in_child(path) == {"read": {k: list(v.shape) for k, v in checkpoints.TINY_STATE.items()}}


def test_fuzzed_checkpoints_read_or_fail_cleanly() -> None:
    # Thousands of mutations in seconds; a crash, a hang or an unexpected exception fails it.
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.checkpoint_fuzz", "--cases", "4000", "--seed", "10"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["failures"] == 0
    # Both outcomes happen: mutations of pure data read, structural ones are refused.
    assert summary["read"] > 100 and summary["refused"] > 1000, summary


@pytest.mark.slow
def test_imagenet_on_a_crafted_checkpoint_exits_2_naming_it(tmp_path: Path, monkeypatch) -> None:
    # The reproduction: this segfaulted `python -m engine imagenet`.
    from tests.support.factories import FIXTURES

    evil = tmp_path / "lite0.pth"
    evil.write_bytes(checkpoints.crafted_build_resize(10**9))
    monkeypatch.setenv("RETRAIN_STUDIO_LITE0_CHECKPOINT", str(evil))
    proc = run_engine("imagenet", "--image", str(FIXTURES / "flower.jpg"), home=tmp_path / "home")
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {evil}: ") and "BUILD" in last
    assert "Traceback" not in proc.stderr
