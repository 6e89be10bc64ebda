"""Time from `streamlit run` starting to the first page painted in headless Chromium.

Goal: under 5 s. Each round starts a fresh server with an empty studio home
(so the demo dataset is generated on the way, as on a first visit), opens the
root URL in an already-running Chromium, and prints:

- health: the server answers `/_stcore/health`;
- first paint: the Dataset page's title is visible;
- page done: the script run finished (per-class grids drawn).

Run from the repository root:  python bench/bench_first_paint.py [--rounds 3] [--reuse-home]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import launch_chromium, start_server, wait_until

GOAL_S = 5.0


def _one_round(browser, home: Path) -> dict[str, float]:
    from playwright.sync_api import expect

    start = time.perf_counter()
    server = start_server(home, wait_healthy=False)
    try:
        wait_until(server.healthy, timeout_s=60, what="/_stcore/health")
        health = time.perf_counter() - start
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(server.url)
        expect(page.get_by_role("heading", level=1)).to_be_visible(timeout=60_000)
        painted = time.perf_counter() - start
        expect(page.get_by_test_id("stApp")).to_have_attribute(
            "data-test-script-state", "notRunning", timeout=120_000
        )
        done = time.perf_counter() - start
        context.close()
    finally:
        server.stop()
    return {"health": health, "first_paint": painted, "page_done": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh servers to time (default 3)")
    parser.add_argument(
        "--reuse-home",
        action="store_true",
        help="keep one studio home for every round, so rounds 2+ find the demo data already made",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds={args.rounds} must be at least 1")
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as tmp:
        browser = launch_chromium(playwright)
        for index in range(args.rounds):
            home = Path(tmp) / ("home" if args.reuse_home else f"home{index}")
            result = _one_round(browser, home)
            results.append(result)
            print(
                f"round {index + 1}: health {result['health']:.2f} s, "
                f"first paint {result['first_paint']:.2f} s, page done {result['page_done']:.2f} s"
            )
        browser.close()
    for key in ("health", "first_paint", "page_done"):
        values = [r[key] for r in results]
        print(
            f"{key:<12} median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f})"
        )
    median_paint = statistics.median(r["first_paint"] for r in results)
    verdict = "met" if median_paint < GOAL_S else "MISSED"
    print(f"goal first paint < {GOAL_S:.0f} s: {verdict} ({median_paint:.2f} s median)")


if __name__ == "__main__":
    main()
