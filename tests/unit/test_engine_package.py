"""The engine as a package: it never imports Streamlit, and importing it loads no TensorFlow."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import engine
from tests.support.cli import REPO_ROOT


def _engine_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(engine.__path__, prefix="engine."))


def test_engine_source_never_imports_streamlit() -> None:
    offenders = [
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / "engine").rglob("*.py")
        if any(
            line.strip().startswith(("import streamlit", "from streamlit"))
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []


def test_importing_every_engine_module_loads_neither_streamlit_nor_tensorflow() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {_engine_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('streamlit', 'tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
