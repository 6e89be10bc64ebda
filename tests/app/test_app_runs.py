"""The Runs page (AppTest): the runs table, comparing curves, deleting with confirmation."""

from __future__ import annotations

from tests.support.app import home_runs, open_page, shown, trace_names, write_run


def test_runs_page_without_runs_says_how_to_make_one(studio_home) -> None:
    app = open_page("runs")
    assert not app.exception
    assert "Train page" in app.info[0].value


def test_runs_table_lists_every_run_with_its_figures(studio_home) -> None:
    done = write_run(state="done", test_accuracy=0.75)
    failed = write_run(state="failed", test_accuracy=None)
    app = open_page("runs")
    assert not app.exception
    table = app.dataframe[0].value.set_index("run")
    assert set(table.index) == {done.run_id, failed.run_id}
    assert table.loc[done.run_id, "status"] == "done"
    assert table.loc[done.run_id, "test accuracy"] == 0.75
    assert table.loc[failed.run_id, "status"] == "failed"
    assert "steps=6" in table.loc[done.run_id, "settings"]


def test_compare_overlays_both_runs_curves(studio_home) -> None:
    write_run(steps=4)
    write_run(steps=6)
    app = open_page("runs")
    names = trace_names(app)
    assert {"A train_accuracy", "B train_accuracy", "A validation_accuracy", "B cross_entropy"} <= set(
        names
    )


def test_delete_asks_for_confirmation_before_removing_the_folder(studio_home) -> None:
    run = write_run()
    app = open_page("runs")
    app.button(key="runs_delete").click().run()
    assert run.run_id in shown(app.warning[0].value)
    assert home_runs(studio_home) == [run.run_id]
    app.button(key="runs_delete_yes").click().run()
    assert not app.exception
    assert run.run_id not in home_runs(studio_home)
    assert "No runs yet" in app.info[0].value


def test_cancelling_delete_keeps_the_run(studio_home) -> None:
    run = write_run()
    app = open_page("runs")
    app.button(key="runs_delete").click().run()
    app.button(key="runs_delete_no").click().run()
    assert home_runs(studio_home) == [run.run_id]
    assert not app.warning


def test_deleting_a_running_run_is_refused_with_a_message(studio_home) -> None:
    import os

    run = write_run(state="running")
    run.write_status("running", pid=os.getpid())
    app = open_page("runs")
    app.button(key="runs_delete").click().run()
    app.button(key="runs_delete_yes").click().run()
    assert app.error, "deleting a live run must show why it was refused"
    assert home_runs(studio_home) == [run.run_id]


def test_use_on_predict_selects_the_run_for_this_tab(studio_home) -> None:
    from ui import state

    older, newer = write_run(), write_run()
    app = open_page("runs")
    app.selectbox(key="runs_chosen").set_value(older.run_id).run()
    app.button(key="runs_use").click().run()
    assert not app.exception
    assert app.session_state[state.RUN_KEY] == older.run_id
    app.switch_page("app_pages/predict.py").run()
    assert app.selectbox(key="predict_run").value == older.run_id != newer.run_id
