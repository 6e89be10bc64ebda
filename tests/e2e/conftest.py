"""End-to-end fixtures: one `streamlit run` server per test module, one headless Chromium.

Browser tests run against Debian's /usr/bin/chromium. Where it is missing they
are skipped on a quick local run, but with CI set a missing browser fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import CHROMIUM, REPO_ROOT, StreamlitServer, launch_chromium, start_server

SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
# Generous: the first visit of a page may import TensorFlow on 2 busy cores.
LOAD_TIMEOUT_MS = 90_000
# Tall, so a whole page fits for its screenshot (Streamlit scrolls inside the app, not the document).
VIEWPORT = {"width": 1400, "height": 2400}


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Headless Chromium (Debian's), shared by the session."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must install it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    """The dashboard on a free port with its own empty studio home; stopped with its children."""
    home = tmp_path_factory.mktemp("e2e-home")
    # The model cache (converted backbones) is shared with the rest of the session.
    from engine.paths import cache_dir

    running = start_server(home, env={"RETRAIN_STUDIO_CACHE": str(cache_dir())})
    yield running
    print(f"--- streamlit log ({running.log_path}) ---\n{running.log_tail()}")
    running.stop()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh browser tab (its own context, so its own Streamlit session)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


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
