"""The Compare models page (AppTest), with the job registry launching tests/support/fake_sweeper.py.

The page builds a SweepConfig and the registry writes it into a new `-sweep`
folder; the fake writes the real sweep's files through the engine's own
writers (made-up figures), and hands a training request (a "full run") to the
fake trainer, so the page's start, follow, reattach, cancel, leaderboard and
full-run paths all run for real, without TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runs.jobs import JobRegistry
from engine.runs.listing import list_runs
from engine.train.sweep import read_leaderboard
from engine.train.sweep_config import SweepConfig
from tests.support.app import (
    fake_job_registry,
    hold_fake_jobs,
    open_page,
    plotly_titles,
    shown,
    trace_names,
)
from tests.support.cli import REPO_ROOT
from tests.support.waiting import wait_for

JOB_DEADLINE_S = 60
FAKE_SWEEPER = REPO_ROOT / "tests" / "support" / "fake_sweeper.py"
START = "FormSubmitter:compare_settings-Start comparison"
LITE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
OFFERED = [*LITE, "small_cnn"]  # small_cnn: the from-scratch baseline, always available


@pytest.fixture
def registry(monkeypatch) -> JobRegistry:
    """The page's job registry, running the fake instead of `python -m engine`."""
    return fake_job_registry(monkeypatch, FAKE_SWEEPER)


@pytest.fixture
def gate(tmp_path, monkeypatch) -> Path:
    """A file whose creation lets a held fake job finish."""
    return hold_fake_jobs(tmp_path, monkeypatch)


def start_sweep(sizes: str = "default"):
    app = open_page("compare")
    app.radio(key="compare_sizes").set_value(sizes)
    app.button(key=START).click()
    return app.run()


def only_sweep(registry: JobRegistry):
    (sweep,) = list_runs(registry.runs_dir, job="sweep")
    return registry.get(sweep.run_id)


def test_compare_page_offers_the_offline_backbones_and_waits_for_start(registry) -> None:
    app = open_page("compare")
    assert not app.exception
    picker = app.multiselect(key="compare_architectures")
    assert picker.value == OFFERED
    assert "small_cnn (from scratch)" in picker.options and "efficientnet_lite0" in picker.options
    assert any("No comparison yet" in i.value for i in app.info)
    assert list_runs(registry.runs_dir) == []


def test_start_runs_a_sweep_job_with_the_chosen_candidates_and_split(registry) -> None:
    app = start_sweep()
    assert not app.exception
    job = only_sweep(registry)
    assert job.run_id.endswith("-sweep") and job.run_dir.read_status()["job"] == "sweep"
    request = SweepConfig.from_dict(job.run_dir.read_request())
    assert (request.names(), request.sizes) == (OFFERED, "default")
    assert (request.validation_percentage, request.testing_percentage) == (10, 10)
    assert Path(request.image_dir).name == "demo"


def test_finished_sweep_shows_the_table_by_accuracy_and_the_scatter_with_its_pareto_front(
    registry,
) -> None:
    app = start_sweep()
    assert only_sweep(registry).wait(JOB_DEADLINE_S) == "done"
    app.run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["candidate"]) == [
        "efficientnet_lite1@240",
        "efficientnet_lite2@260",
        "efficientnet_lite0@224",
        "small_cnn@64",
    ]
    assert list(table["kind"]) == ["transfer learning"] * 3 + ["from scratch"]
    assert list(table["test accuracy"]) == sorted(table["test accuracy"], reverse=True)
    assert "Accuracy against speed (marker area: model size)" in plotly_titles(app)
    assert trace_names(app) == ["Pareto front", "other candidates"]
    [chart] = app.get("plotly_chart")
    figure = json.loads(chart.proto.spec)
    front = figure["data"][0]
    assert front["text"] == [
        "small_cnn@64",  # the from-scratch baseline: least accurate, but the fastest
        "efficientnet_lite0@224",
        "efficientnet_lite1@240",
    ]  # lite2: slower and worse
    assert front["marker"]["sizemode"] == "area" and len(set(front["marker"]["size"])) == 3
    assert any("Pareto front" in c.value and "efficientnet_lite1@240" in c.value for c in app.caption)


def test_one_click_makes_a_candidate_a_full_run_followed_on_the_train_page(registry) -> None:
    app = start_sweep()
    sweep = only_sweep(registry)
    assert sweep.wait(JOB_DEADLINE_S) == "done"
    app.run()
    app.button(key="compare_full_efficientnet_lite2@260").click().run()
    assert not app.exception
    (training,) = list_runs(registry.runs_dir, job="retrain")
    request = registry.get(training.run_id).run_dir.read_request()
    assert (request["architecture"], request["image_size"], request["export"]) == (
        "efficientnet_lite2",
        260,
        True,
    )
    assert request["image_dir"] == sweep.run_dir.read_request()["image_dir"]  # the sweep's data
    assert any(
        training.run_id in shown(h.value) for h in app.subheader
    )  # now on the Train page, following it
    assert registry.get(training.run_id).wait(JOB_DEADLINE_S) == "done"
    # back on Compare: the row knows its full run, and its int8 columns come from the run's exports
    app = open_page("compare")
    assert not app.exception
    [row] = [
        r for r in read_leaderboard(sweep.run_dir)["rows"] if r["candidate"] == "efficientnet_lite2@260"
    ]
    assert row["full_run_id"] == training.run_id
    int8 = registry.get(training.run_id).run_dir.read_report()["exports"]["tflite_int8"]
    assert row["int8_size_bytes"] == int8["size_bytes"]
    assert row["int8_accuracy_change"] == pytest.approx(
        int8["accuracy"] - row["test_accuracy"], abs=1e-6
    )
    table = app.dataframe[0].value.set_index("candidate")
    assert table.loc["efficientnet_lite2@260", "int8 MB"] == pytest.approx(int8["size_bytes"] / 1e6)
    assert app.button(key="compare_open_efficientnet_lite2@260") is not None
    assert not [b for b in app.button if b.key == "compare_full_efficientnet_lite2@260"]


def test_a_running_sweep_is_found_again_shows_its_progress_and_cancels(registry, gate) -> None:
    start_sweep()
    job = only_sweep(registry)
    wait_for(
        lambda: job.run_dir.read_status().get("candidates_total"),
        timeout=JOB_DEADLINE_S,
        what="a candidate",
    )
    other_tab = open_page("compare")  # a reload or a second tab
    assert not other_tab.exception
    assert other_tab.selectbox(key="compare_chosen").value == job.run_id
    texts = [p.proto.text for p in other_tab.get("progress")]
    assert any(t.startswith("Candidate 1 of 4: efficientnet_lite0@224") for t in texts)
    assert any(t.startswith("Bottlenecks: 3/6 images") for t in texts)
    assert other_tab.button(key=START).disabled
    other_tab.button(key="compare_cancel").click().run()
    assert job.wait(JOB_DEADLINE_S) == "cancelled"


def test_one_job_at_a_time_the_train_page_waits_for_a_running_sweep(registry, gate) -> None:
    start_sweep()
    job = only_sweep(registry)
    train = open_page("train")
    assert not train.exception
    assert any("A model comparison is running" in i.value for i in train.info)
    assert train.button(key="FormSubmitter:train_settings-Start training").disabled
    gate.touch()
    assert job.wait(JOB_DEADLINE_S) == "done"


def test_runs_and_predict_pages_show_a_sweep_as_a_sweep(registry) -> None:
    start_sweep()
    job = only_sweep(registry)
    assert job.wait(JOB_DEADLINE_S) == "done"
    runs = open_page("runs")
    assert not runs.exception
    table = runs.dataframe[0].value
    row = table[table["run"] == job.run_id].iloc[0]
    assert row["architecture"] == "sweep"
    assert row["settings"] == "sweep of 4 candidates, best efficientnet_lite1@240"
    runs.selectbox(key="runs_chosen").set_value(job.run_id).run()
    assert runs.button(key="runs_use").disabled  # a comparison has no model to predict with
    predict = open_page("predict")
    assert not predict.exception
    assert any("No finished run yet" in i.value for i in predict.info)
