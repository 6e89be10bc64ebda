"""The TensorBoard page (AppTest): start, link, stop a real TensorBoard; tags and scalars."""

from __future__ import annotations

from engine.core.paths import runs_dir
from tests.e2e.harness import http_get
from tests.support.app import open_page, trace_names, write_run, write_scalar_events


def test_without_logs_it_offers_start_and_says_there_is_nothing_yet() -> None:
    app = open_page("tensorboard")
    assert not app.exception
    assert app.button(key="tb_start")
    assert "No TensorBoard logs yet" in app.info[0].value


def test_tags_and_chosen_runs_scalars_are_shown() -> None:
    first, second = write_run(), write_run()
    for run, values in ((first, [0.5, 0.6, 0.7]), (second, [0.4, 0.8])):
        write_scalar_events(run.tb_dir / "train", "epoch_accuracy", values)
    app = open_page("tensorboard")
    assert not app.exception
    tags = app.dataframe[0].value
    assert set(tags["tag"]) == {"epoch_accuracy"}
    assert sorted(tags["count"]) == [2, 3]
    assert sorted(trace_names(app)) == sorted([f"{first.run_id}/tb/train", f"{second.run_id}/tb/train"])


def test_start_serves_tensorboard_on_localhost_and_stop_ends_it() -> None:
    from engine.runs.tensorboard import stop_tensorboard

    app = open_page("tensorboard")
    app.button(key="tb_start").click().run(timeout=150)
    try:
        assert not app.exception
        (link,) = app.get("link_button")
        url = link.proto.url
        assert url.startswith("http://127.0.0.1:")
        status, body = http_get(url)
        assert status == 200
        assert "TensorBoard" in body or "tensorboard" in body
        app.button(key="tb_stop").click().run()
        assert app.button(key="tb_start")
        assert http_get(url, timeout_s=2)[0] == 0
    finally:
        stop_tensorboard(runs_dir())
