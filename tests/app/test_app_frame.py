"""The router and shared frame (AppTest): every page loads, the sidebar, no TensorFlow at first paint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.app import fresh_app, open_page
from tests.support.cli import REPO_ROOT

PAGES = [
    ("dataset", "Dataset"),
    ("train", "Train"),
    ("compare", "Compare models"),
    ("predict", "Predict"),
    ("runs", "Runs"),
    ("tensorboard", "TensorBoard"),
]


@pytest.mark.parametrize(("page", "title"), PAGES)
def test_every_page_loads_without_an_exception_on_the_demo_default(page: str, title: str) -> None:
    app = open_page(page)
    assert not app.exception
    assert app.title[0].value == title


def test_sidebar_shows_dataset_run_and_device() -> None:
    app = fresh_app()
    sidebar = " ".join(m.value for m in app.sidebar.markdown)
    assert "**Dataset:** demo" in sidebar
    assert "**Run:** latest finished" in sidebar
    assert "**Device:** CPU" in sidebar or "**Device:** GPU" in sidebar


def test_first_page_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "app = AppTest.from_file('streamlit_app.py', default_timeout=120).run()\n"
        "assert not app.exception, app.exception\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
