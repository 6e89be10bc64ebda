"""The Train page's "this machine" / "Ray cluster" choice (AppTest), with the fake trainer.

The check of a cluster runs `python -m engine cluster` for real. A live
two-node cluster is shown by `test_a_live_cluster_shows_its_nodes_and_the_run_asks_for_it`,
which tests/faults/test_ray_cluster.py runs inside the cluster's namespace
(it is skipped elsewhere: it needs `RS_TEST_RAY_ADDRESS`).
"""

from __future__ import annotations

import os
import socket

import pytest

from engine.runs.jobs import JobRegistry
from tests.support.app import fake_job_registry, home_runs, open_page, shown
from tests.support.cli import REPO_ROOT

FAKE_TRAINER = REPO_ROOT / "tests" / "support" / "fake_trainer.py"
START = "FormSubmitter:train_settings-Start training"
LIVE_ADDRESS = os.environ.get("RS_TEST_RAY_ADDRESS")


@pytest.fixture
def registry(monkeypatch) -> JobRegistry:
    return fake_job_registry(monkeypatch, FAKE_TRAINER)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _choose_cluster(address: str):
    app = open_page("train")
    app.radio(key="train_compute").set_value("Ray cluster").run()
    app.text_input(key="train_ray_address").input(address).run()
    return app


def _start_disabled(app) -> bool:
    return app.button(key=START).proto.disabled


def test_this_machine_is_the_default_and_asks_nothing_more(registry) -> None:
    app = open_page("train")
    assert not app.exception
    assert app.radio(key="train_compute").value == "this machine"
    assert not [t for t in app.text_input if t.key == "train_ray_address"]


def test_a_cluster_that_does_not_answer_says_why_and_training_cannot_start(registry) -> None:
    port = _closed_port()
    app = _choose_cluster(f"127.0.0.1:{port}")
    assert not app.exception
    errors = " ".join(shown(e.value) for e in app.error)
    assert f"Cannot use the Ray cluster at 127.0.0.1:{port}" in errors
    assert "cannot reach" in errors and "Traceback" not in errors
    assert _start_disabled(app)


def test_an_address_that_is_not_host_port_is_refused_in_words(registry) -> None:
    app = _choose_cluster("my-cluster")
    assert not app.exception
    assert "HOST:PORT" in " ".join(shown(e.value) for e in app.error)
    assert _start_disabled(app)


@pytest.mark.skipif(LIVE_ADDRESS is None, reason="needs a live cluster: run by test_ray_cluster.py")
def test_a_live_cluster_shows_its_nodes_and_the_run_asks_for_it(registry) -> None:
    app = _choose_cluster(str(LIVE_ADDRESS))
    assert not app.exception
    assert any(
        f"Ray cluster at {LIVE_ADDRESS}: 2 node(s), 2 CPU(s), 0 GPU(s)" in shown(s.value)
        for s in app.success
    )
    (nodes,) = app.dataframe
    assert len(nodes.value) == 2 and set(nodes.value["state"]) == {"alive"}
    app.number_input(key="train_steps").set_value(3)
    app.button(key=START).click().run()
    (run_id,) = home_runs(registry.runs_dir.parent)
    assert registry.get(run_id).run_dir.read_request()["ray"] == LIVE_ADDRESS
