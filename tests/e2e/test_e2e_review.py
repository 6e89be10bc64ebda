"""The data loop in a real headless Chromium: the review table (tick a row, its details panel from
the keyboard, move it, undo), label these next (file an unsorted photo in one click, undo), a
confusion-matrix cell of a trained run, and its heatmap.

The run is the session's tiny trained run (a real EfficientNet-Lite0 model), copied into the
server's runs folder with its data; one of its test photos is listed in the copy's report as a
mistake, so the clicked cell has a photo to show (the tiny run answers every test photo right).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import open_app, screenshot, wait_for_idle

pytestmark = pytest.mark.e2e

REVIEW_TIMEOUT_MS = 240_000
# The review table's geometry (ui/review_table.py: 64 px thumbnails + 8): the header row, a row.
HEADER_PX = 35
ROW_PX = 72


def _photos(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))


def _section_screenshot(page, heading: str, name: str) -> None:
    """docs/screenshots/<name>.png of the page from `heading` down (it lies below the tall window)."""
    from tests.e2e.harness import SCREENSHOTS, VIEWPORT

    title = page.get_by_role("heading", name=heading)
    title.scroll_into_view_if_needed()
    # A rerun after the scroll can move the heading again: await it in the window, then keep the
    # clip inside the window (a clip past its edge is an error, not a shorter picture).
    expect(title).to_be_in_viewport(timeout=30_000)
    box = title.bounding_box()
    top = min(max(0, int(box["y"]) - 24), VIEWPORT["height"] - 1)
    height = min(1000, VIEWPORT["height"] - top)
    clip = {"x": 0, "y": top, "width": VIEWPORT["width"], "height": height}
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), clip=clip)


def _tick_first_row(page, table) -> None:
    """Tick the first row's checkbox (the grid is a canvas: click where its row marker is drawn).

    The grid keeps an accessible table beside its canvas whose rows say `aria-selected`; the
    tick is awaited there. A click that lands while a grid just shown in its tab is still
    laying itself out is lost (CI saw it once): it selects nothing, so clicking again is safe.
    """
    expect(table).to_be_visible()
    first = table.locator('tr[role="row"][aria-rowindex="2"]')
    expect(first).to_be_attached()
    for _attempt in range(3):
        box = table.bounding_box()
        page.mouse.click(box["x"] + 16, box["y"] + HEADER_PX + ROW_PX / 2)
        try:
            expect(first).to_have_attribute("aria-selected", "true", timeout=10_000)
            return
        except AssertionError:
            continue
    raise AssertionError("three clicks on the first row's marker never ticked it")


def test_the_review_table_moves_a_selected_photo_shows_its_details_and_undoes(page, server) -> None:
    open_app(page, server)
    demo = server.home / "datasets" / "demo"
    before = _photos(demo)
    page.get_by_text("Review the photos").click()
    outliers = page.get_by_role("tab", name=re.compile(r"^Outliers \(\d+\)"))
    expect(outliers).to_be_visible(timeout=REVIEW_TIMEOUT_MS)
    outliers.click()
    panel = page.get_by_role("tabpanel").filter(has=page.get_by_role("button", name="Set aside"))
    move = panel.get_by_role("button", name=re.compile(r"^Move"))
    expect(move).to_be_disabled()  # nothing ticked yet
    _tick_first_row(page, panel.get_by_test_id("stDataFrame"))
    expect(panel.get_by_role("button", name="Move 1")).to_be_enabled(timeout=30_000)
    wait_for_idle(page)
    screenshot(page, "dataset-review")
    page.keyboard.press("Alt+o")  # Details, from the keyboard
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Photo details")).to_be_visible(timeout=60_000)
    expect(dialog.get_by_text(re.compile("No trained model on this dataset yet"))).to_be_visible()
    expect(dialog.get_by_text("Nearest neighbours")).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    panel.get_by_role("button", name="Move 1").click()
    expect(page.get_by_text(re.compile(r"^Moved 1 photo\(s\) to .+\.$"))).to_be_visible(timeout=60_000)
    moved = set(_photos(demo)) ^ set(before)
    assert len(moved) == 2, moved  # one photo gone from its class, one arrived in another
    page.get_by_role("button", name="Undo").first.click()
    expect(page.get_by_text(re.compile(r"^Undone: put back "))).to_be_visible(timeout=60_000)
    assert _photos(demo) == before
    wait_for_idle(page)


def test_label_these_next_files_an_unsorted_photo_in_one_click_and_undoes(page, server) -> None:
    from tests.support.photo_tiles import tiles

    open_app(page, server)  # the demo is made on the first visit
    demo = server.home / "datasets" / "demo"
    loose = demo / "unsorted"
    loose.mkdir(exist_ok=True)
    for n, tile in enumerate(tiles("flower")[:3]):
        tile.resize((240, 240)).save(loose / f"loose-{n}.png")
    open_app(page, server)
    expect(page.get_by_text(re.compile(r"3 unsorted photo\(s\)"))).to_be_visible(
        timeout=REVIEW_TIMEOUT_MS
    )
    yes = page.get_by_role("button", name=re.compile(r"^This is ")).first
    expect(yes).to_be_visible()
    target = yes.inner_text().removeprefix("This is ").strip()
    wait_for_idle(page)
    _section_screenshot(page, "Label these next", "dataset-label-next")
    yes.click()
    expect(page.get_by_text(re.compile(rf"^Filed loose-\d\.png as {target}\.$"))).to_be_visible(
        timeout=60_000
    )
    expect(page.get_by_text(re.compile(r"2 unsorted photo\(s\)"))).to_be_visible(timeout=60_000)
    assert len(list(loose.iterdir())) == 2 and any((demo / target).glob("loose-*.png"))
    page.get_by_role("button", name="Undo").first.click()
    expect(page.get_by_text(re.compile(r"3 unsorted photo\(s\)"))).to_be_visible(timeout=60_000)
    assert len(list(loose.iterdir())) == 3
    wait_for_idle(page)


def _install_run(server, tiny_run) -> tuple[str, str]:
    """Copy the tiny run and its data into the server's home; list one test photo as a mistake."""
    data = server.home / "datasets" / "tiny-colours"
    shutil.copytree(tiny_run.data_dir, data)
    run = server.home / "runs" / tiny_run.run.path.name
    shutil.copytree(tiny_run.run.path, run)
    config = json.loads((run / "config.json").read_text())
    config["image_dir"] = str(data)
    (run / "config.json").write_text(json.dumps(config))
    report = json.loads((run / "report.json").read_text())
    labels = report["labels"]
    true, predicted = labels[0], labels[1]
    photo = min((data / true).iterdir()).relative_to(data).as_posix()
    report["misclassified"] = [
        {"path": photo, "true_label": true, "predicted_label": predicted, "confidence": 0.6}
    ]
    report["confusion_matrix"][0][1] += 1
    (run / "report.json").write_text(json.dumps(report))
    return true, predicted


def test_a_confusion_cell_opens_its_photos_and_a_heatmap_explains_one(page, server, tiny_run) -> None:
    true, predicted = _install_run(server, tiny_run)
    open_app(page, server, "train")
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text="predicted")
    expect(chart).to_be_visible(timeout=60_000)
    points = chart.locator(".scatterlayer .point")
    expect(points).to_have_count(len(tiny_run.report["labels"]) ** 2)
    box = points.nth(1).bounding_box()  # row 0 (true), column 1 (predicted)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_text(f"Test photos of {true} predicted as {predicted}")).to_be_visible(
        timeout=60_000
    )
    page.get_by_text("Why this answer").first.click()
    expect(page.get_by_text(re.compile(r"heatmap for \w+"))).to_be_visible(timeout=120_000)
    wait_for_idle(page)
    screenshot(page, "train-report-cell")
