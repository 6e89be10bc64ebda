"""Every third-party package the product imports is pinned in requirements.txt.

A fresh `pip install -r requirements.txt` is all a user runs (README), so a
package that is only in the developer's environment breaks the dashboard or
the CLI there, however green the tests were here.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.support.cli import REPO_ROOT

PRODUCT = ["engine", "ui", "app_pages", "streamlit_app.py"]
OURS = {"engine", "ui", "app_pages", "streamlit_app"}


def imported_top_levels() -> dict[str, str]:
    """Top-level module -> one file importing it, over the product's code (not tests, not bench)."""
    found: dict[str, str] = {}
    for entry in PRODUCT:
        root = REPO_ROOT / entry
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO_ROOT)))
    return found


def pinned(requirements: Path) -> set[str]:
    names = set()
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==|>=)", line)
        if match:
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return names


def test_every_imported_package_is_pinned_in_requirements_txt() -> None:
    distributions = packages_distributions()
    pins = pinned(REPO_ROOT / "requirements.txt")
    missing = {}
    for module, where in imported_top_levels().items():
        if module in OURS or module in sys.stdlib_module_names or module == "__future__":
            continue
        owners = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(module, [])}
        assert owners, f"{module} (imported by {where}) is not installed at all"
        if not owners & pins:
            missing[module] = (where, sorted(owners))
    assert not missing, f"imported but not pinned in requirements.txt: {missing}"


def test_the_pin_reader_sees_a_missing_package(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("ray[data]==2.60.0  # comment\nnumpy>=2.1,<3\n-e .\n", encoding="utf-8")
    assert pinned(requirements) == {"ray", "numpy"}
