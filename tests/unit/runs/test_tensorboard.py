"""engine.runs.tensorboard: a real TensorBoard on 127.0.0.1, started, reused and stopped."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from engine.core import ports
from engine.core.errors import StudioError
from engine.core.paths import home_dir
from engine.core.procs import process_alive
from engine.runs.tensorboard import (
    reclaim_orphans,
    running_tensorboards,
    start_tensorboard,
    stop_owned_tensorboards,
    stop_tensorboard,
)
from tests.support.event_logs import write_tf2_logs


@pytest.fixture(scope="module")
def tf2_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tf2_logs(tmp_path_factory.mktemp("tb") / "logs")


def test_start_on_a_missing_logdir_is_a_studio_error(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="is not a folder"):
        start_tensorboard(tmp_path / "nope")


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def board_logdir(studio_home: Path, tf2_logdir: Path) -> Path:
    """A copy of the event files under a fresh studio home, so each test has its own server."""
    logdir = studio_home / "runs"
    shutil.copytree(tf2_logdir, logdir)
    yield logdir
    stop_tensorboard(logdir)


def test_started_tensorboard_serves_its_page_and_our_runs(board_logdir: Path) -> None:
    board = start_tensorboard(board_logdir)
    assert board.url == f"http://127.0.0.1:{board.port}/"
    status, page = _get(board.url)
    assert status == 200 and b"<html" in page.lower()
    _, runs = _get(board.url + "data/runs")
    assert sorted(json.loads(runs)) == ["train", "validation"]
    assert board.alive() and not board.reused


def test_second_start_reuses_the_running_server(board_logdir: Path) -> None:
    first = start_tensorboard(board_logdir)
    again = start_tensorboard(str(board_logdir) + "/")
    assert (again.pid, again.port, again.reused) == (first.pid, first.port, True)
    assert [p.pid for p in running_tensorboards()] == [first.pid]


def test_stop_ends_the_process_and_frees_the_port(board_logdir: Path) -> None:
    board = start_tensorboard(board_logdir)
    assert stop_tensorboard(board_logdir) is True
    assert not process_alive(board.pid, board.pid_start)
    assert _port_closed(board.port)
    assert running_tensorboards() == []
    assert stop_tensorboard(board_logdir) is False


def test_a_dead_server_is_replaced_on_the_next_start(board_logdir: Path) -> None:
    board = start_tensorboard(board_logdir)
    board.stop()
    fresh = start_tensorboard(board_logdir)
    assert fresh.pid != board.pid and not fresh.reused and fresh.alive()


def test_a_busy_requested_port_is_replaced_by_a_free_one(board_logdir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        board = start_tensorboard(board_logdir, port=busy)
        assert board.port != busy
        assert board.notice and str(busy) in board.notice
        assert _get(board.url + "data/environment")[0] == 200


def test_a_port_taken_after_the_check_is_retried_on_another(
    board_logdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the check says free, TensorBoard then fails to bind: the race the retry loop is for
    monkeypatch.setattr(ports, "port_free", lambda host, port: True)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        board = start_tensorboard(board_logdir, port=busy)
    assert board.port != busy
    assert "could not bind" in (home_dir() / "tensorboard" / f"tensorboard-{busy}.log").read_text()
    assert board.alive()


@pytest.mark.parametrize("port", [0, 70000, "6006", True])
def test_start_refuses_invalid_ports(tmp_path: Path, port: object) -> None:
    with pytest.raises(ValueError, match="port must be"):
        start_tensorboard(tmp_path, port=port)  # type: ignore[arg-type]


@pytest.fixture
def short_lived_owner() -> subprocess.Popen:
    """A process to own a server, killed by the test to leave an orphan (as a SIGKILLed app would)."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield owner
    owner.kill()
    owner.wait()


def test_an_owner_stops_only_the_servers_it_owns(board_logdir: Path, tmp_path: Path) -> None:
    other_logdir = shutil.copytree(board_logdir, tmp_path / "other")
    owned = start_tensorboard(board_logdir, owner=os.getpid())
    free = start_tensorboard(other_logdir)  # the CLI's kind: no owner
    try:
        assert (owned.owner_pid, free.owner_pid) == (os.getpid(), None)
        assert stop_owned_tensorboards(os.getpid()) == 1
        assert not process_alive(owned.pid, owned.pid_start)
        assert free.alive()
        assert [p.pid for p in running_tensorboards()] == [free.pid]
        assert stop_owned_tensorboards(os.getpid()) == 0
    finally:
        stop_tensorboard(other_logdir)


def test_a_server_whose_owner_died_is_adopted_for_its_logdir_and_stopped_for_another(
    board_logdir: Path, tmp_path: Path, short_lived_owner: subprocess.Popen
) -> None:
    other_logdir = shutil.copytree(board_logdir, tmp_path / "other")
    ours = start_tensorboard(board_logdir, owner=short_lived_owner.pid)
    theirs = start_tensorboard(other_logdir, owner=short_lived_owner.pid)
    short_lived_owner.kill()
    short_lived_owner.wait()  # the app that started them is gone without cleaning up
    assert ours.orphaned() and theirs.orphaned()
    adopted, stopped = reclaim_orphans(board_logdir, owner=os.getpid())
    assert [b.pid for b in adopted] == [ours.pid]
    assert [b.pid for b in stopped] == [theirs.pid]
    assert not process_alive(theirs.pid, theirs.pid_start)
    (kept,) = running_tensorboards()
    assert (kept.pid, kept.owner_pid) == (ours.pid, os.getpid()) and kept.alive()
    again = start_tensorboard(board_logdir, owner=os.getpid())
    assert (again.pid, again.reused) == (ours.pid, True)  # reused, not started twice
    assert reclaim_orphans(board_logdir, owner=os.getpid()) == ([], [])


def test_a_reused_server_with_a_live_owner_or_none_keeps_it(
    board_logdir: Path, short_lived_owner: subprocess.Popen
) -> None:
    board = start_tensorboard(board_logdir, owner=short_lived_owner.pid)
    reused = start_tensorboard(board_logdir, owner=os.getpid())
    assert reused.reused and reused.owner_pid == short_lived_owner.pid
    assert stop_owned_tensorboards(os.getpid()) == 0 and board.alive()
