"""Start `streamlit run` on a free port and drive it with Debian's Chromium.

Shared by the e2e fixtures (tests/e2e/conftest.py) and the first-paint
benchmark (bench/bench_first_paint.py). Nothing here sleeps: every wait polls
a condition against a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Quiet and offline: no background fetches that would fail on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
HEALTH_TIMEOUT_S = 60.0
_POLL_S = 0.1
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
# Generous: the first visit of a page may import TensorFlow on 2 busy cores.
LOAD_TIMEOUT_MS = 90_000
# Tall, so a whole page fits for its screenshot (Streamlit scrolls inside the app, not the document).
VIEWPORT = {"width": 1400, "height": 2400}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; return it.

    Raises:
        TimeoutError: naming `what` when the deadline passes first.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        # A short pause between polls, not a wait for the condition itself.
        time.sleep(_POLL_S)


def http_get(url: str, *, timeout_s: float = 5.0) -> tuple[int, str]:
    """GET `url`; return (status, body), or (0, error text) when it cannot connect."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return 0, str(exc)


@dataclass
class StreamlitServer:
    """A `streamlit run streamlit_app.py` process in its own session.

    Attributes:
        port: the port it serves on (127.0.0.1).
        home: its RETRAIN_STUDIO_HOME (runs, datasets).
        log_path: where its output goes (a file, never an undrained pipe).
        process: the Popen handle.
    """

    port: int
    home: Path
    log_path: Path
    process: subprocess.Popen
    _log: IO[bytes]

    @property
    def url(self) -> str:
        """The app's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's output."""
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def healthy(self) -> bool:
        """True when `/_stcore/health` answers ok."""
        status, body = http_get(f"{self.url}/_stcore/health", timeout_s=2.0)
        return status == 200 and body.strip() == "ok"

    def stop(self) -> None:
        """Stop the server's process group, then any job or TensorBoard it started."""
        _kill_group(self.process.pid)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        _stop_children_of_home(self.home)
        self._log.close()


def start_server(
    home: Path,
    *,
    env: dict[str, str] | None = None,
    wait_healthy: bool = True,
    options: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> StreamlitServer:
    """Start the dashboard with its own studio home on a free port.

    Args:
        home: RETRAIN_STUDIO_HOME for the server (created if missing).
        env: extra environment variables. Defaults to None.
        wait_healthy: poll `/_stcore/health` before returning. Defaults to True.
        options: more `streamlit run` options, e.g. `("--server.address", "0.0.0.0")`.
            Defaults to ().
        cwd: the checkout to run (its streamlit_app.py and .streamlit/). Defaults
            to this repository.

    Returns:
        The running server.

    Raises:
        RuntimeError: the server exited or did not become healthy; its log is quoted.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = home / "streamlit.log"
    log = log_path.open("wb")
    full_env = {
        **os.environ,
        "RETRAIN_STUDIO_HOME": str(home),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        *options,
    ]
    process = subprocess.Popen(
        command,
        cwd=cwd or REPO_ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = StreamlitServer(port=port, home=home, log_path=log_path, process=process, _log=log)
    if wait_healthy:
        try:
            wait_until(
                lambda: server.process.poll() is not None or server.healthy(),
                timeout_s=HEALTH_TIMEOUT_S,
                what="/_stcore/health",
            )
            if server.process.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{server.log_tail()}")
        except (TimeoutError, RuntimeError) as exc:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"{exc}\n--- server log ---\n{tail}") from exc
    return server


def launch_chromium(playwright: Any) -> Any:
    """Launch Debian's Chromium headless through Playwright (its own download fails offline)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def _kill_group(pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _stop_children_of_home(home: Path) -> None:
    """Stop training jobs and TensorBoard the app started in their own sessions.

    They deliberately outlive the server (a job survives a closed browser), so
    the test harness, not the app, ends them: via the pids in the run folders'
    status.json and in engine.runs.tensorboard's record (<home>/tensorboard.json).
    """
    for status_path in home.glob("runs/*/status.json"):
        try:
            status = json.loads(status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        pid = status.get("pid")
        if isinstance(pid, int) and status.get("state") in {"queued", "running"}:
            _kill_group(pid, signal.SIGKILL)
    try:
        record = json.loads((home / "tensorboard.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    instances = record.get("instances", []) if isinstance(record, dict) else []
    for instance in instances:
        pid = instance.get("pid") if isinstance(instance, dict) else None
        if isinstance(pid, int):
            _kill_group(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- driving a page


def open_app(page, server: StreamlitServer, path: str = "") -> None:
    """Open `path` of the app and wait until its script has run once."""
    page.goto(f"{server.url}/{path}")
    wait_for_idle(page)


def wait_for_idle(page, timeout_ms: int = LOAD_TIMEOUT_MS) -> None:
    """Wait until the app is connected and its script is not running."""
    from playwright.sync_api import expect

    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED", timeout=timeout_ms)
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout_ms)


def screenshot(page, name: str) -> Path:
    """Save the page's content (no empty space below it) to docs/screenshots/<name>.png.

    A page showing an exception fails the test instead.

    Streamlit scrolls inside its main container, so a "full page" shot would
    stop at the window; the tall window (`VIEWPORT`) holds the pages instead,
    and the shot is clipped to where the content ends.
    """
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stException")).to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    bottom = page.evaluate(
        "() => document.querySelector('[data-testid=stMainBlockContainer]')"
        ".getBoundingClientRect().bottom"
    )
    height = min(VIEWPORT["height"], int(bottom) + 24)
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height})
    return path
