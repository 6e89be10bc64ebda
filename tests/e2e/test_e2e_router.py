"""The router in a real browser: every page is reachable by its URL and paints inside the shared frame.

The first test opens a deep link on a server no one has visited yet: the
router must still run (the sidebar frame and the titled navigation).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import open_app

pytestmark = pytest.mark.e2e

PAGES = [
    ("runs", "Runs"),
    ("train", "Train"),
    ("compare", "Compare models"),
    ("predict", "Predict"),
    ("tensorboard", "TensorBoard"),
    ("", "Dataset"),
]


@pytest.mark.parametrize(("path", "title"), PAGES)
def test_each_page_paints_its_title(page, server, path: str, title: str) -> None:
    open_app(page, server, path)
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    expect(page.get_by_test_id("stDialog")).to_have_count(0)  # no "page not found"
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar).to_contain_text("Device:")
    expect(sidebar.get_by_role("link", name="TensorBoard")).to_be_visible()


def test_chosen_folder_shows_in_the_sidebar_and_carries_over_to_train(page, server, tmp_path) -> None:
    from tests.support.factories import write_class_folders

    root = write_class_folders(tmp_path / "pets", {"cats": 4, "dogs": 4})
    open_app(page, server)
    expect(page.get_by_text("Ready to train on")).to_be_visible(timeout=90_000)
    page.get_by_text("Local folder", exact=True).click()
    field = page.get_by_label("Folder with one sub-folder per class")
    field.fill(str(root))
    field.press("Enter")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar).to_contain_text(f"Dataset: {root}", timeout=60_000)
    expect(page.get_by_text(re.compile(r"^cats · 4 photos$"))).to_be_visible()
    # through the navigation (same session), not a new URL (a new session)
    sidebar.get_by_role("link", name="Train").click()
    expect(page.get_by_role("heading", name="Train", level=1)).to_be_visible()
    expect(page.get_by_text(f"Retrain the last layer on {root}")).to_be_visible()
    expect(sidebar).to_contain_text(f"Dataset: {root}")
