"""The structure the code promises: layered imports, no cycles, no TensorFlow in the UI.

`lint-imports` checks the contracts in pyproject.toml ([tool.importlinter]):
engine's layers import downwards only, engine never imports Streamlit, ui/ and
the pages import no TensorFlow themselves, no cycle among sibling modules,
private modules stay private. A second check imports every ui module for real
and looks at what got loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_hold() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    assert "KEPT" in result.stdout


def test_every_contract_is_declared() -> None:
    import tomllib

    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    assert {c["type"] for c in contracts} >= {"layers", "forbidden", "acyclic_siblings"}
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    assert layers[1:] == ["runs", "train", "serve", "models", "data", "core"]


def test_importing_the_ui_and_the_engine_loads_no_tensorflow() -> None:
    modules = sorted(
        ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts)
        for folder in ("ui", "engine")
        for p in (REPO_ROOT / folder).rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'torch'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
