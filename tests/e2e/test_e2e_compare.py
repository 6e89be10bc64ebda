"""The leaderboard in a real headless Chromium: a finished sweep, its table and scatter, one click to a full run.

The sweep folder is written with the engine's own writers (figures made up,
files real); the full run it starts is a real `python -m engine retrain` job
(random weights on a tiny dataset, so it is quick), which the Train page then
follows. The page's screenshot goes to docs/screenshots/compare.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import open_app, screenshot, wait_for_idle, wait_until
from tests.support.factories import write_class_folders

pytestmark = pytest.mark.e2e

# (candidate, test accuracy, ms per photo, float MB): lite1 is the most accurate, lite0 the fastest.
FIGURES = [
    ("efficientnet_lite0", 224, 0.91, 9.0, 13.5),
    ("efficientnet_lite0", 160, 0.86, 5.0, 13.5),
    ("efficientnet_lite1", 240, 0.95, 15.0, 16.5),
    ("efficientnet_lite2", 260, 0.93, 21.0, 19.0),
]


def write_finished_sweep(server, photos) -> str:
    from engine.core.rundir import RunDir
    from engine.train.candidates import BackboneCandidate, CandidateResult
    from engine.train.sweep import leaderboard_row, write_leaderboard
    from engine.train.sweep_config import SweepConfig

    config = SweepConfig(
        image_dir=str(photos), testing_percentage=25, validation_percentage=25, seed=1, weights=None
    )
    run = RunDir.create(server.home / "runs", backbone="sweep")
    run.write_request(config.as_dict())
    run.write_config({**config.as_dict(), "job": "sweep"})
    run.write_status("running", job="sweep", architecture="sweep")
    rows = []
    for name, size, accuracy, latency, megabytes in FIGURES:
        candidate = BackboneCandidate(name, size)
        result = CandidateResult(
            accuracy, accuracy - 0.01, 40, int(megabytes * 1e6), int(megabytes * 2.5e5), latency,
            latency / 2, accuracy - 0.02, {"l2": 0.001},
        )  # fmt: skip
        rows.append(
            {
                **leaderboard_row(candidate, result, 30.0),
                "full_run": candidate.full_run(config).as_dict(),
            }
        )
    write_leaderboard(run, rows, labels=["blue", "red"], skipped=[])
    run.write_status("done", best="efficientnet_lite1@240", test_accuracy=0.95, candidates_total=4)
    return run.run_id


def test_leaderboard_shows_table_and_scatter_and_one_click_starts_a_full_run(
    page, server, tmp_path
) -> None:
    from engine.runs.listing import list_runs

    photos = write_class_folders(tmp_path / "photos", {"red": 6, "blue": 6})
    sweep_id = write_finished_sweep(server, photos)
    open_app(page, server, "compare")
    expect(page.get_by_role("heading", name="Compare models", level=1)).to_be_visible()
    expect(page.get_by_role("combobox", name="Comparison")).to_have_value(
        re.compile(rf"^{sweep_id} · done")
    )

    # the table, best first, and the scatter with its Pareto front
    expect(page.get_by_test_id("stDataFrame")).to_have_count(1)
    chart = page.get_by_test_id("stPlotlyChart")
    expect(chart).to_have_count(1)
    expect(chart.locator(".legendtext", has_text="Pareto front")).to_have_count(1)
    expect(chart.locator(".legendtext", has_text="other candidates")).to_have_count(1)
    for name, size, *_ in FIGURES:
        expect(chart.locator(".textpoint", has_text=f"{name}@{size}")).to_have_count(1)
    expect(page.get_by_text(re.compile(r"^Pareto front \(nothing both more accurate and faster\): "
                                       r"efficientnet_lite0@160, efficientnet_lite0@224, efficientnet_lite1@240\.$"))
           ).to_be_visible()  # fmt: skip
    wait_for_idle(page)
    screenshot(page, "compare")

    # one click: a training of that candidate starts, and the Train page follows it
    page.get_by_role("button", name="efficientnet_lite0@160").click()
    trainings = []
    wait_until(
        lambda: trainings.extend(list_runs(server.home / "runs", job="retrain")) or trainings,
        timeout_s=60,
        what="the full run's folder",
    )
    (training,) = trainings
    request = training.run.read_request()
    assert (request["architecture"], request["image_size"], request["image_dir"]) == (
        "efficientnet_lite0", 160, str(photos),
    )  # fmt: skip
    expect(page.get_by_role("heading", name=f"Run {training.run_id}")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("heading", name="Train", level=1)).to_be_visible()
