"""The dashboard process's own lifetime: the TensorBoard servers it starts end with it.

TensorBoard runs in its own session (so a page rerun never kills it), which
also means it would outlive the app. `install` runs once per server process
(the router calls it on every run; only the first does anything):

- it adopts a TensorBoard left by an earlier app that was killed (SIGKILL,
  a crash) if it serves our runs folder, and stops any other such orphan;
- it registers an `atexit` hook that stops every server this process owns.
  Streamlit turns SIGTERM, SIGINT and SIGQUIT into a clean shutdown, so the
  hook runs for those; after a SIGKILL the next app start reclaims the server.

Signal handlers can only be set from the main thread, and page scripts run in
Streamlit's script threads, so the hook is `atexit`, not a signal handler.
"""

from __future__ import annotations

import atexit
import os
import threading

from engine.core.paths import runs_dir
from engine.runs.tensorboard import reclaim_orphans, stop_owned_tensorboards
from ui.errors import logger

_lock = threading.Lock()
_installed_for: int | None = None


def owner() -> int:
    """The pid that owns the TensorBoard servers the dashboard starts (this server process)."""
    return os.getpid()


def install() -> bool:
    """Reclaim orphaned TensorBoards and register the exit hook, once per process.

    Returns:
        True on the call that installed it, False on every later one.
    """
    global _installed_for
    with _lock:
        if _installed_for == os.getpid():
            return False
        _installed_for = os.getpid()
    atexit.register(_stop_ours, os.getpid())
    try:
        adopted, stopped = reclaim_orphans(runs_dir(), owner=owner())
    except OSError as error:  # an unreadable record must not keep the app from starting
        logger().warning("could not check for TensorBoard servers left by an earlier app: %s", error)
        return True
    for board in adopted:
        logger().info("reusing TensorBoard pid %s left by an earlier app (%s)", board.pid, board.url)
    for board in stopped:
        logger().info("stopped TensorBoard pid %s left by an earlier app", board.pid)
    return True


def _stop_ours(pid: int) -> None:
    """The exit hook: stop the servers `pid` owns (a forked child inherits the hook; it owns none)."""
    if os.getpid() != pid:
        return
    count = stop_owned_tensorboards(pid)
    if count:
        logger().info("stopped %d TensorBoard server(s) on exit", count)
