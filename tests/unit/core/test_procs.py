"""engine.core.procs: telling a process from a recycled pid, starting and stopping process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from engine.core.procs import (
    _read_proc_stat,
    process_alive,
    process_start_ticks,
    spawn_detached,
    stop_group,
)
from tests.support.waiting import wait_for


def test_process_alive_rejects_a_recycled_pid() -> None:
    ticks = process_start_ticks(os.getpid())
    assert process_alive(os.getpid(), ticks)
    assert not process_alive(os.getpid(), (ticks or 0) + 1)


def test_process_alive_is_false_for_a_zombie() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    # without wait() the exited child stays a zombie; poll /proc until it is one
    wait_for(lambda: (_read_proc_stat(proc.pid) or ["?"])[0] == "Z", timeout=30)
    assert not process_alive(proc.pid)
    proc.wait()


# A group leader that starts a child in its own group, says "ready", then waits;
# with --ignore_sigterm both ignore SIGTERM, so only SIGKILL ends them.
GROUP_LEADER = textwrap.dedent(
    """
    import signal, subprocess, sys, time

    if "--ignore_sigterm" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        def on_term(signum, frame):
            print("leader got SIGTERM", flush=True)
            sys.exit(143)
        signal.signal(signal.SIGTERM, on_term)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print("ready", child.pid, flush=True)
    while True:
        time.sleep(0.05)
    """
)


def _spawn_group(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen, int, Path]:
    log = tmp_path / "leader.log"
    leader = spawn_detached([sys.executable, "-c", GROUP_LEADER, *flags], log_path=log)
    line = wait_for(
        lambda: next((ln for ln in log.read_text().splitlines() if ln.startswith("ready")), None),
        timeout=60,
        what="the group leader to start its child",
    )
    return leader, int(line.split()[1]), log


def test_spawn_detached_starts_a_new_session_and_appends_output_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("before\n")
    proc = spawn_detached(
        [sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid(), os.getcwd())"],
        log_path=log,
        cwd=tmp_path,
    )
    assert proc.wait(timeout=60) == 0
    assert log.read_text().splitlines() == ["before", f"True {tmp_path}"]


def test_stop_group_terminates_a_group_with_sigterm(tmp_path: Path) -> None:
    leader, child, log = _spawn_group(tmp_path)
    try:
        assert stop_group(leader.pid, process_start_ticks(leader.pid), terminate_grace_s=30) is True
        assert leader.wait(timeout=30) == 143  # it handled SIGTERM itself
        assert "leader got SIGTERM" in log.read_text()
        wait_for(lambda: not process_alive(child), timeout=30, what="the child to end with its group")
    finally:
        _kill_group(leader)


def test_stop_group_kills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    leader, child, _ = _spawn_group(tmp_path, "--ignore_sigterm")
    try:
        assert stop_group(leader.pid, terminate_grace_s=0.5) is True
        assert leader.wait(timeout=30) == -signal.SIGKILL
        wait_for(
            lambda: not process_alive(child), timeout=30, what="the child to be killed with its group"
        )
    finally:
        _kill_group(leader)


def test_stop_group_sends_nothing_to_a_recycled_pid(tmp_path: Path) -> None:
    leader, child, log = _spawn_group(tmp_path)
    try:
        ticks = process_start_ticks(leader.pid)
        assert ticks is not None
        # another start time: the pid now belongs to some other process, leave it alone
        assert stop_group(leader.pid, ticks + 1, terminate_grace_s=0.5) is True
        assert leader.poll() is None and process_alive(child)
        assert "SIGTERM" not in log.read_text()
    finally:
        _kill_group(leader)


def test_stop_group_of_no_process_is_done_at_once() -> None:
    assert stop_group(None, terminate_grace_s=0) is True


def _kill_group(leader: subprocess.Popen) -> None:
    """A failing test must not leave the group running on the shared machine."""
    if leader.poll() is None:
        try:
            os.killpg(leader.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        leader.wait(timeout=30)
