"""End-to-end fixtures: one `streamlit run` server per test module, one headless Chromium.

The helpers the tests call (`open_app`, `wait_for_idle`, `screenshot`) live in
tests/e2e/harness.py.

Browser tests run against Debian's /usr/bin/chromium. Where it is missing they
are skipped on a quick local run, but with CI set a missing browser fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.harness import CHROMIUM, VIEWPORT, StreamlitServer, launch_chromium, start_server


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
    from engine.core.paths import cache_dir

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
