"""The router in a real browser: every page is reachable and paints."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import open_app

pytestmark = pytest.mark.e2e

PAGES = [
    ("dataset", "Dataset"),
    ("train", "Train"),
    ("predict", "Predict"),
    ("runs", "Runs"),
    ("tensorboard", "TensorBoard"),
]


@pytest.mark.parametrize(("path", "title"), PAGES)
def test_each_page_paints_its_title(page, server, path: str, title: str) -> None:
    open_app(page, server, path)
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
