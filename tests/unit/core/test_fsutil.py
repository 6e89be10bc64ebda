"""The foundation: engine independence, atomic writes, progress, CLI errors."""

from __future__ import annotations

import io
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine import fsutil
from engine.progress import Progress, ProgressTracker, TerminalBar, format_duration

from .conftest import REPO_ROOT


def _engine_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(engine.__path__, prefix="engine."))


def test_engine_source_never_imports_streamlit() -> None:
    offenders = [
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / "engine").rglob("*.py")
        if any(
            line.strip().startswith(("import streamlit", "from streamlit"))
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []


def test_importing_every_engine_module_loads_neither_streamlit_nor_tensorflow() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {_engine_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('streamlit', 'tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_atomic_write_json_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "status.json"
    fsutil.atomic_write_json(target, {"state": "running"})
    fsutil.atomic_write_json(target, {"state": "done", "n": 2})
    assert json.loads(target.read_text()) == {"n": 2, "state": "done"}
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]


def test_atomic_path_keeps_old_target_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), fsutil.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_atomic_path_replaces_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with fsutil.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


def test_progress_reports_rate_and_time_left() -> None:
    now = [100.0]
    seen: list[Progress] = []
    tracker = ProgressTracker("scan", 10, seen.append, unit="images", clock=lambda: now[0])
    now[0] = 102.0
    tracker.advance(4, cached=1)
    assert seen[-1].done == 4
    assert seen[-1].rate == pytest.approx(2.0)
    assert seen[-1].eta_s == pytest.approx(3.0)
    assert seen[-1].detail == {"cached": 1}
    now[0] = 102.05
    tracker.advance(1)  # within min interval: not reported
    assert len(seen) == 1
    now[0] = 105.0
    tracker.advance(5)  # finished: always reported
    assert seen[-1].fraction == 1.0 and seen[-1].eta_s == 0.0


def test_terminal_bar_prints_counts_and_time_left_on_plain_stream() -> None:
    out = io.StringIO()
    bar = TerminalBar(out, plain_interval_s=0)
    bar(Progress("bottlenecks", 30, 120, 3.0, unit="images"))
    line = out.getvalue()
    assert "30/120 images" in line and "25.0%" in line and "0:09 left" in line


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "?"), (5, "0:05"), (75.2, "1:15"), (3725, "1:02:05")]
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_cli_without_command_prints_help_and_exits_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine"],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert out.returncode == 2
    assert "usage: python -m engine" in out.stdout
