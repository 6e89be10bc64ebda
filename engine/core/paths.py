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

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path

# retrain.py's --model_dir for the training running in this context (None: the studio's cache).
_model_dir: contextvars.ContextVar[Path | None] = contextvars.ContextVar("model_dir", default=None)


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


def model_dir() -> Path | None:
    """The `--model_dir` in force (where pretrained weights are looked for and kept), or None."""
    return _model_dir.get()


@contextlib.contextmanager
def using_model_dir(folder: str | os.PathLike[str] | None) -> Iterator[None]:
    """Within the block, pretrained weights are looked for and kept in `folder` first.

    Args:
        folder: retrain.py's `--model_dir`; None keeps the studio's cache.
    """
    token = _model_dir.set(Path(folder).expanduser() if folder else None)
    try:
        yield
    finally:
        _model_dir.reset(token)


def backbone_file(name: str) -> Path:
    """Where the converted-backbone file `name` is: in `--model_dir` when given, else the cache.

    Like retrain.py, a training given `--model_dir` leaves the weights it used
    there: a conversion the cache already holds is copied in (atomically), so
    the folder is complete even when nothing had to be converted.

    Args:
        name: the file's name (a converted weights file or a .tflite).

    Returns:
        `--model_dir`/name when `--model_dir` is given (existing, copied from
        the cache, or where a new conversion goes), else `cache_dir()/backbones`/name.
    """
    cached = cache_dir() / "backbones" / name
    chosen = model_dir()
    if chosen is None:
        return cached
    kept = chosen / name
    if not kept.is_file() and cached.is_file():
        from engine.core.fsutil import atomic_write_bytes

        atomic_write_bytes(kept, cached.read_bytes())
    return kept


def weights_dirs() -> list[Path]:
    """Where downloaded weight files are looked for, in order (`--model_dir` first); the first keeps new ones."""
    chosen = model_dir()
    return [*([chosen] if chosen is not None else []), cache_dir() / "weights"]


def engine_version() -> str:
    """The installed retrain-studio version (pyproject.toml), or "unknown" when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("retrain-studio")
    except PackageNotFoundError:
        return "unknown"
