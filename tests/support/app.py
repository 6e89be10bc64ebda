"""Helpers for the AppTest suites (tests/app/): a fresh app, tiny runs on disk.

Runs are written through `engine.core.rundir.RunDir`, the same API the trainer
uses, so pages read them exactly as they read a real training's output.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.support.cli import REPO_ROOT
from tests.support.tiny_model import colour_classifier

# Generous: a page may import heavy modules (pandas, plotly; TF on Predict) on 2 busy cores.
APP_TIMEOUT_S = 120


def share_datasets(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point RETRAIN_STUDIO_DATASETS at one folder for the whole session.

    Generating the demo dataset takes seconds; it is deterministic, so tests
    that only read it share one copy while runs stay per test.
    """
    shared = Path(os.environ["RETRAIN_STUDIO_CACHE"]).parent / "datasets"
    monkeypatch.setenv("RETRAIN_STUDIO_DATASETS", str(shared))
    return shared


def fresh_app() -> AppTest:
    """The app's entry point, run once, with every Streamlit cache emptied first."""
    st.cache_data.clear()
    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=APP_TIMEOUT_S)
    return app.run()


def open_page(page: str) -> AppTest:
    """A fresh app switched to `app_pages/<page>.py` and run."""
    app = fresh_app()
    app.switch_page(f"app_pages/{page}.py")
    return app.run()


def write_run(
    *,
    state: str = "done",
    steps: int = 6,
    test_accuracy: float | None = 0.75,
    config: dict[str, Any] | None = None,
    backbone: str = "efficientnet_lite0",
) -> Any:
    """A run folder with a config, a status and `steps` step events (validation every 2nd).

    Returns:
        The `engine.core.rundir.RunDir`.
    """
    from engine.core.rundir import RunDir

    run = RunDir.create(backbone=backbone)
    run.write_config(
        {
            "architecture": backbone,
            "image_dir": "/data/demo",
            "how_many_training_steps": steps,
            "learning_rate": 0.01,
            "train_batch_size": 8,
            **(config or {}),
        }
    )
    run.write_status("running")
    for step in range(1, steps + 1):
        event = {
            "event": "step",
            "time": float(step),
            "step": step,
            "total_steps": steps,
            "train_accuracy": min(1.0, 0.3 + 0.1 * step),
            "cross_entropy": 1.5 / step,
            "learning_rate": 0.01,
            "images_per_s": 100.0,
            "elapsed_s": float(step),
        }
        if step % 2 == 0:
            event |= {"validation_accuracy": 0.25 + 0.1 * step, "validation_cross_entropy": 1.6 / step}
        run.append_event(event)
    fields = {} if test_accuracy is None else {"test_accuracy": test_accuracy}
    run.write_status(state, **fields)
    return run


def plotly_titles(app: AppTest) -> list[str]:
    """The titles of the plotly charts on the page (AppTest gives plotly as raw protos)."""
    import json

    titles = []
    for element in app.get("plotly_chart"):
        figure = json.loads(element.proto.spec)
        titles.append(figure.get("layout", {}).get("title", {}).get("text", ""))
    return titles


def trace_names(app: AppTest) -> list[str]:
    """Every trace name of every plotly chart on the page."""
    import json

    names = []
    for element in app.get("plotly_chart"):
        figure = json.loads(element.proto.spec)
        names += [trace.get("name", "") for trace in figure.get("data", [])]
    return names


def home_runs(home: Path) -> list[str]:
    """The run ids under a studio home, oldest first."""
    from engine.runs.listing import list_runs

    return sorted(r.run_id for r in list_runs(home / "runs"))


COLOUR_LABELS = ["red", "blue"]


def write_colour_model_run(size: int = 32) -> Any:
    """A finished run whose model.keras tells red photos from blue ones (weights set, not trained).

    A real Keras model (mean colour -> softmax), so the Predict page runs the
    real loading and inference path; it imports TensorFlow but trains nothing.

    Returns:
        The `engine.core.rundir.RunDir`.
    """
    # red channel votes "red", blue channel votes "blue"
    model = colour_classifier([[8.0, -8.0], [0.0, 0.0], [-8.0, 8.0]], size)
    run = write_run(state="done", test_accuracy=1.0, config={"image_size": size})
    model.save(run.model_path)
    run.write_labels(COLOUR_LABELS)
    return run


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    """A plain PNG of one colour."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def write_scalar_events(folder: Path, tag: str, values: list[float]) -> Path:
    """A TensorBoard event file in `folder` with `values` as scalars of `tag` at steps 1, 2, ...

    Written with TensorBoard's own writer and protos, as Keras would, minus TensorFlow.
    """
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for step, value in enumerate(values, start=1):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        writer.add_event(event_pb2.Event(wall_time=float(step), step=step, summary=summary))
    writer.close()
    return folder


def table_with(app: AppTest, column: str) -> Any:
    """The first dataframe on the page that has `column` (AppTest keeps no dataframe keys)."""
    for table in app.dataframe:
        if column in table.value.columns:
            return table.value
    raise AssertionError(f"no table with a {column!r} column among {len(app.dataframe)}")


_ESCAPED_PUNCTUATION = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(markdown: str) -> str:
    """The text a browser shows for Markdown escaped by `ui.safe.md` (escapes and hard breaks undone)."""
    return _ESCAPED_PUNCTUATION.sub(r"\1", markdown.replace("  \n", "\n"))


SIGN_IN = "FormSubmitter:sign_in-Sign in"


def sign_in(app: AppTest, password: str) -> AppTest:
    """Type `password` into an exposed app's sign-in form, press Sign in, and run."""
    app.text_input(key="access_password").input(password)
    app.button(key=SIGN_IN).click()
    return app.run()


def fake_job_registry(monkeypatch: pytest.MonkeyPatch, script: Path) -> Any:
    """The pages' job registry, running the fake `script` instead of `python -m engine <job>`.

    Args:
        monkeypatch: the test's monkeypatch (the registry is swapped for the test only).
        script: tests/support/fake_trainer.py or fake_sweeper.py.

    Returns:
        The `engine.runs.jobs.JobRegistry` the pages now use.
    """
    import sys

    import ui.cached
    from engine.runs.jobs import JobRegistry

    fake = JobRegistry(command=[sys.executable, str(script)])
    monkeypatch.setattr(ui.cached, "job_registry", lambda: fake)
    return fake


def hold_fake_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A gate file: a fake job holds after its first step (or candidate) until the file exists."""
    path = tmp_path / "release"
    monkeypatch.setenv("FAKE_TRAINER_GATE", str(path))
    return path
