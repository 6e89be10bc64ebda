"""The from-scratch baseline on the Train page (AppTest, the fake trainer): offered, ready, started."""

from __future__ import annotations

import pytest

from engine.runs.jobs import JobRegistry
from tests.support.app import fake_job_registry, home_runs, open_page
from tests.support.cli import REPO_ROOT

FAKE_TRAINER = REPO_ROOT / "tests" / "support" / "fake_trainer.py"
START = "FormSubmitter:train_settings-Start training"


@pytest.fixture
def registry(monkeypatch) -> JobRegistry:
    """The page's job registry, running the fake instead of `python -m engine`."""
    return fake_job_registry(monkeypatch, FAKE_TRAINER)


def test_the_picker_offers_small_cnn_as_trained_from_scratch_and_starts_it(registry) -> None:
    app = open_page("train")
    picker = app.selectbox(key="train_architecture")
    assert "small_cnn · 64 px · trained from scratch" in picker.options
    app = picker.set_value("small_cnn").run()
    assert not app.exception
    assert not app.warning, "small_cnn needs no weights: nothing may be missing"
    assert any("trained from scratch" in c.value for c in app.caption)
    assert not app.button(key=START).disabled

    steps = app.number_input(key="train_steps_scratch")
    assert (steps.value, app.number_input(key="train_batch_scratch").value) == (500, 32)
    steps.set_value(4)
    app.button(key=START).click()
    app.run()
    assert not app.exception
    (run_id,) = home_runs(registry.runs_dir.parent)
    request = registry.get(run_id).run_dir.read_request()
    assert (request["architecture"], request["how_many_training_steps"]) == ("small_cnn", 4)
    assert request["train_batch_size"] == 32  # the from-scratch starting value, not retrain.py's 100
    assert run_id.endswith("-small_cnn")
