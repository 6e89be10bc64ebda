"""The data loop in a real headless Chromium: review the demo, move a photo and undo it, click a
confusion-matrix cell of a trained run, and turn on its heatmap.

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


def _photos(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))


def test_review_move_a_photo_then_undo_it(page, server) -> None:
    open_app(page, server)
    demo = server.home / "datasets" / "demo"
    before = _photos(demo)
    page.get_by_text("Review the photos").click()
    outliers = page.get_by_role("tab", name=re.compile(r"^Outliers \(\d+\)"))
    expect(outliers).to_be_visible(timeout=REVIEW_TIMEOUT_MS)
    outliers.click()
    panel = page.get_by_role("tabpanel").filter(has=page.get_by_role("button", name="Set aside"))
    move = panel.get_by_role("button", name="Move").first
    expect(move).to_be_visible()
    screenshot(page, "dataset-review")
    move.click()
    expect(page.get_by_text(re.compile(r"^Moved .+ to .+\.$"))).to_be_visible(timeout=60_000)
    moved = set(_photos(demo)) ^ set(before)
    assert len(moved) == 2, moved  # one photo gone from its class, one arrived in another
    page.get_by_role("button", name="Undo").first.click()
    expect(page.get_by_text(re.compile(r"^Undone: put back "))).to_be_visible(timeout=60_000)
    assert _photos(demo) == before
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
