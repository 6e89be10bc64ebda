"""Where Retrain Studio keeps its files, overridable by environment variables.

| variable | default | holds |
| --- | --- | --- |
| `RETRAIN_STUDIO_HOME` | `~/.retrain_studio` | everything below, unless set separately |
| `RETRAIN_STUDIO_RUNS` | `$HOME_DIR/runs` | one folder per training run |
| `RETRAIN_STUDIO_CACHE` | `$HOME_DIR/cache` | converted models, bottlenecks, scan cache |
| `RETRAIN_STUDIO_DATASETS` | `$HOME_DIR/datasets` | demo data, imports, downloads |
| `RETRAIN_STUDIO_DATA_ROOTS` | unset | `os.pathsep`-separated folders a local dataset path must lie in (set it when the app is reachable beyond localhost) |

Nothing is created at import time; callers create what they write to.
"""

from __future__ import annotations

import os
from pathlib import Path


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def home_dir() -> Path:
    """The studio's home folder (`RETRAIN_STUDIO_HOME`)."""
    return _env_path("RETRAIN_STUDIO_HOME", Path.home() / ".retrain_studio")


def runs_dir() -> Path:
    """The runs folder (`RETRAIN_STUDIO_RUNS`)."""
    return _env_path("RETRAIN_STUDIO_RUNS", home_dir() / "runs")


def cache_dir() -> Path:
    """The cache folder (`RETRAIN_STUDIO_CACHE`)."""
    return _env_path("RETRAIN_STUDIO_CACHE", home_dir() / "cache")


def datasets_dir() -> Path:
    """The folder for generated, imported and downloaded datasets (`RETRAIN_STUDIO_DATASETS`)."""
    return _env_path("RETRAIN_STUDIO_DATASETS", home_dir() / "datasets")


def data_roots() -> list[Path] | None:
    """Folders a local dataset path must lie in, or None when any path is allowed."""
    value = os.environ.get("RETRAIN_STUDIO_DATA_ROOTS", "").strip()
    if not value:
        return None
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


def engine_version() -> str:
    """The installed retrain-studio version (pyproject.toml), or "unknown" when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("retrain-studio")
    except PackageNotFoundError:
        return "unknown"
