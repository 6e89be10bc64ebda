"""Streamlit caches over engine calls (caching lives here, never in `engine/`).

`st.cache_data` for things a page only reads (thumbnails, event-file
scalars): every caller gets a copy. `st.cache_resource` for process-wide
singletons (the job registry, loaded predictors) shared by every tab, so a
reload or a second tab finds the same job, and for dataset scans, which pages
only read: copying a 6,000-photo scan on every rerun cost 0.2 s. (TensorBoard needs no
cache here: engine.runs.tensorboard records its servers on disk and reuses them.)
Keys include a cheap change signature (mtimes), so new data is picked up.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import streamlit as st

# Thumbnails of one class are decoded side by side (PIL releases the GIL while decoding).
_THUMBNAIL_WORKERS = max(2, os.cpu_count() or 2)


def folder_signature(root: str | Path) -> float:
    """The newest mtime of `root` and its direct sub-folders (adding or removing a photo changes it).

    Args:
        root: a folder.

    Returns:
        A float that changes when the folder's content does; 0.0 when it is missing.
    """
    root = Path(root)
    try:
        stamps = [root.stat().st_mtime]
        stamps += [p.stat().st_mtime for p in root.iterdir() if p.is_dir()]
    except OSError:
        return 0.0
    return max(stamps)


@st.cache_resource(show_spinner=False)
def swept_leftovers() -> tuple[str, ...]:
    """Sweep the temporaries interrupted processes left (`engine.core.leftovers`), once per server.

    Returns:
        The paths removed when this server process started.
    """
    from engine.core.leftovers import sweep_leftovers

    return tuple(str(path) for path in sweep_leftovers())


@st.cache_data(show_spinner="Preparing the demo dataset…")
def demo_dataset_root() -> str:
    """The generated demo dataset's folder (created on first use)."""
    from engine.data.demo import ensure_demo_dataset

    return str(ensure_demo_dataset())


@st.cache_resource(show_spinner="Scanning the dataset…", max_entries=8)
def scan(root: str, validation_percentage: int, testing_percentage: int, signature: float) -> Any:
    """`engine.data.scan.scan_dataset`, cached per folder, split and change signature.

    Shared by every session, not copied: treat the dataset as read-only.

    Args:
        root: the dataset folder.
        validation_percentage: share of each class for validation.
        testing_percentage: share of each class for the test split.
        signature: `folder_signature(root)`; a new value rescans.

    Returns:
        The `engine.data.dataset.Dataset`.

    Raises:
        StudioError: the folder cannot be scanned (the message says why).
    """
    from engine.data.scan import scan_dataset

    del signature  # only part of the cache key
    return scan_dataset(
        root, validation_percentage=validation_percentage, testing_percentage=testing_percentage
    )


@st.cache_data(show_spinner=False, max_entries=4096)
def thumbnail(path: str, mtime: float, max_side: int = 160) -> bytes | None:
    """A PNG preview of one photo, or None when it cannot be decoded.

    Args:
        path: the photo.
        mtime: its modification time (part of the key, so an edited photo is redrawn).
        max_side: the preview's longest side in pixels. Defaults to 160.

    Returns:
        PNG bytes, or None.
    """
    del mtime  # only part of the cache key
    return _thumbnail_or_none(path, max_side)


@st.cache_data(show_spinner=False, max_entries=4096)
def thumbnails(
    paths: tuple[str, ...], mtimes: tuple[float, ...], max_side: int = 160
) -> list[bytes | None]:
    """PNG previews of several photos (a class's row), made side by side; None for a bad one.

    Args:
        paths: the photos.
        mtimes: their modification times (part of the key).
        max_side: the previews' longest side in pixels. Defaults to 160.

    Returns:
        PNG bytes or None, in the order of `paths`.
    """
    del mtimes  # only part of the cache key
    with ThreadPoolExecutor(min(_THUMBNAIL_WORKERS, max(1, len(paths)))) as pool:
        return list(pool.map(partial(_thumbnail_or_none, max_side=max_side), paths))


def _thumbnail_or_none(path: str, max_side: int) -> bytes | None:
    from engine.core.errors import ImageError
    from engine.data.geometry import thumbnail_png

    try:
        return thumbnail_png(path, max_side=max_side)
    except ImageError:
        return None


@st.cache_resource
def job_registry() -> Any:
    """The process-wide `engine.runs.jobs.JobRegistry` (one per server, shared by every tab)."""
    from engine.runs.jobs import JobRegistry

    return JobRegistry()


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def predictor(run_dir: str, model_mtime: float) -> Any:
    """A loaded `engine.serve.inference.Predictor`, shared by every tab.

    Args:
        run_dir: the run folder.
        model_mtime: the model file's mtime (a retrained model gets a new entry).

    Returns:
        The predictor (LiteRT when the run has a TFLite export, else TensorFlow).

    Raises:
        StudioError: the run has no usable model.
    """
    from engine.serve.inference import Predictor

    del model_mtime  # only part of the cache key
    return Predictor.from_run(run_dir)


@st.cache_data(show_spinner=False, max_entries=32)
def run_steps(run_path: str, events_size: int) -> Any:
    """A run's step events as a table (`ui.figures.steps_frame`), cached until events.jsonl grows.

    Args:
        run_path: the run folder.
        events_size: events.jsonl's size in bytes (`file_size`), part of the key.

    Returns:
        A DataFrame with `ui.figures.STEP_COLUMNS`.
    """
    from engine.core.rundir import RunDir
    from ui.figures import steps_frame

    del events_size
    events, _ = RunDir(run_path).read_events(0)
    return steps_frame(events)


def file_size(path: str | Path) -> int:
    """The size of `path` in bytes (0 when missing): a cheap change key."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


@st.cache_resource(show_spinner="Loading the model for heatmaps…", max_entries=2)
def heatmapper(run_dir: str, model_mtime: float) -> Any:
    """The run's `engine.serve.gradcam.Heatmapper` (TensorFlow loads here, on the first heatmap)."""
    from engine.serve.gradcam import Heatmapper

    del model_mtime  # only part of the cache key
    return Heatmapper(run_dir)


@st.cache_data(show_spinner=False, max_entries=256)
def heatmap(run_dir: str, path: str, mtime: float) -> Any:
    """The Grad-CAM `Heatmap` of one photo under a run's model, or None when it cannot be made."""
    from engine.core.errors import StudioError

    del mtime  # only part of the cache key
    try:
        maker = heatmapper(run_dir, (Path(run_dir) / "model.keras").stat().st_mtime)
        return maker(path)
    except (StudioError, OSError):
        return None
