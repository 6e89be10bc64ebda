"""The router in a real browser: every page is reachable by its URL and paints inside the shared frame.

The first test opens a deep link on a server no one has visited yet: the
router must still run (the sidebar frame and the titled navigation).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import open_app

pytestmark = pytest.mark.e2e

PAGES = [
    ("runs", "Runs"),
    ("train", "Train"),
    ("predict", "Predict"),
    ("tensorboard", "TensorBoard"),
    ("dataset", "Dataset"),
]


@pytest.mark.parametrize(("path", "title"), PAGES)
def test_each_page_paints_its_title(page, server, path: str, title: str) -> None:
    open_app(page, server, path)
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar).to_contain_text("Device:")
    expect(sidebar.get_by_role("link", name="TensorBoard")).to_be_visible()
