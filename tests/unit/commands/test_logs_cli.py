"""`python -m engine inspect-logs`, `tensorboard` and `runs`, run as a user would."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from engine.core.rundir import RunDir
from tests.support.cli import run_engine
from tests.support.event_logs import SCALAR_STEPS, write_tf2_logs


@pytest.fixture(scope="module")
def tf2_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tf2_logs(tmp_path_factory.mktemp("tb") / "logs")


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_cli_inspect_logs_prints_runs_and_tags(tf2_logdir: Path, tmp_path: Path) -> None:
    out = run_engine("inspect-logs", "--logdir", str(tf2_logdir), home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "run: train" in out.stdout and "run: validation" in out.stdout
    assert any(
        line.split()[:3] == ["scalar", "accuracy", str(SCALAR_STEPS)]
        and f"steps 0..{SCALAR_STEPS - 1}" in line
        for line in out.stdout.splitlines()
    )


def test_cli_inspect_logs_of_a_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    out = run_engine("inspect-logs", "--logdir", str(tmp_path / "nope"), home=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr


def test_cli_tensorboard_starts_then_reuses_then_stops(tf2_logdir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    started = run_engine("tensorboard", "--logdir", str(tf2_logdir), home=home)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert _get(url)[0] == 200
        reused = run_engine("tensorboard", "--logdir", str(tf2_logdir), home=home)
        assert reused.stdout.startswith("Reusing") and reused.stdout.strip().endswith(url)
    finally:
        stopped = run_engine("tensorboard", "--logdir", str(tf2_logdir), "--stop", home=home)
    assert stopped.stdout.startswith("Stopped")
    assert _port_closed(int(url.rstrip("/").rsplit(":", 1)[1]))


def _finished(runs_dir: Path, accuracy: float) -> RunDir:
    run = RunDir.create(runs_dir, backbone="efficientnet_lite0")
    run.write_config({"image_dir": "/photos"})
    run.write_status("running")
    run.write_status("done", test_accuracy=accuracy, step=40)
    return run


def test_cli_runs_lists_runs_newest_first(tmp_path: Path) -> None:
    old, new = _finished(tmp_path, 0.5), _finished(tmp_path, 0.9)
    out = run_engine("runs", "--runs_dir", str(tmp_path), home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["RUN", "STATUS", "ARCHITECTURE"]
    assert [line.split()[0] for line in lines[1:]] == [new.run_id, old.run_id]
    assert "90.0%" in lines[1] and "/photos" in lines[1]


def test_cli_runs_delete_removes_one_run(tmp_path: Path) -> None:
    keep, gone = _finished(tmp_path, 0.5), _finished(tmp_path, 0.9)
    out = run_engine(
        "runs", "--runs_dir", str(tmp_path), "--delete", gone.run_id, home=tmp_path / "home"
    )
    assert out.returncode == 0, out.stderr
    assert not gone.path.exists() and keep.path.is_dir()


def test_cli_runs_delete_of_a_bad_id_is_a_one_line_error(tmp_path: Path) -> None:
    out = run_engine("runs", "--runs_dir", str(tmp_path), "--delete", "../etc", home=tmp_path / "home")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: run id '../etc' is not valid")
