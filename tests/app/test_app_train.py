"""The Train page (AppTest), with the job registry launching tests/support/fake_trainer.py.

The page builds a TrainConfig and the registry writes it into the run folder
(request.json); the fake reads it there and writes the real trainer's files
through `engine.core.rundir.RunDir`, so the page's start, follow, reattach,
cancel and report paths all run for real, without TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.runs.jobs import JobRegistry
from engine.train.config import TrainConfig
from tests.support.app import (
    fake_job_registry,
    hold_fake_jobs,
    home_runs,
    open_page,
    plotly_titles,
    shown,
)
from tests.support.cli import REPO_ROOT
from tests.support.waiting import wait_for

JOB_DEADLINE_S = 60
FAKE_TRAINER = REPO_ROOT / "tests" / "support" / "fake_trainer.py"
START = "FormSubmitter:train_settings-Start training"


@pytest.fixture
def registry(monkeypatch) -> JobRegistry:
    """The page's job registry, running the fake instead of `python -m engine`."""
    return fake_job_registry(monkeypatch, FAKE_TRAINER)


@pytest.fixture
def gate(tmp_path, monkeypatch) -> Path:
    """A file whose creation lets a held fake job finish."""
    return hold_fake_jobs(tmp_path, monkeypatch)


def start(app, steps: int = 3):
    app.number_input(key="train_steps").set_value(steps)
    app.button(key=START).click()
    return app.run()


def test_train_page_loads_on_the_demo_default_and_waits_for_start(registry) -> None:
    app = open_page("train")
    assert not app.exception
    assert "demo" in app.caption[0].value
    assert "Start training" in app.info[0].value
    assert home_runs(registry.runs_dir.parent) == []


def test_start_launches_one_job_with_the_chosen_settings(registry) -> None:
    app = start(open_page("train"), steps=3)
    assert not app.exception
    (run_id,) = home_runs(registry.runs_dir.parent)
    run = registry.get(run_id).run_dir
    request = run.read_request()
    assert request is not None, "the page's settings must be in the run's request.json"
    assert request["how_many_training_steps"] == 3
    assert Path(request["image_dir"]).name == "demo"
    assert request["export"] is True
    assert request["architecture"] == "efficientnet_lite0"
    # the request is a whole, valid TrainConfig: what the trainer will read back
    assert TrainConfig.from_dict(request).validate().as_dict() == request
    status = run.read_status()
    assert (status["architecture"], status["job"]) == ("efficientnet_lite0", "retrain")


def test_finished_job_shows_accuracy_confusion_matrix_and_downloads(registry) -> None:
    app = start(open_page("train"), steps=3)
    (run_id,) = home_runs(registry.runs_dir.parent)
    assert registry.get(run_id).wait(JOB_DEADLINE_S) == "done"
    app.run()
    assert not app.exception
    final = {m.label: m.value for m in app.metric}["Final test accuracy"]
    assert final == "66.7%"
    assert "Accuracy" in plotly_titles(app)
    labels = [shown(b.proto.label) for b in app.get("download_button")]
    assert sorted(labels) == ["MODEL_CARD.md", "labels.txt", "model.tflite", "saved_model.zip"]


def test_finished_job_shows_its_runtime_and_what_each_export_costs(registry) -> None:
    app = start(open_page("train"), steps=3)
    (run_id,) = home_runs(registry.runs_dir.parent)
    assert registry.get(run_id).wait(JOB_DEADLINE_S) == "done"
    app.run()
    assert not app.exception
    assert any("Features computed on **LiteRT**" in c.value for c in app.caption)
    assert any("What each saved model costs" in m.value for m in app.markdown)
    per_class, scored = (frame.value for frame in app.dataframe)
    assert list(scored["model"]) == ["Keras (model.keras)", "TFLite float", "TFLite int8"]
    assert list(scored["size (MB)"]) == [5.0, 4.0, 1.0]
    assert scored["test accuracy"].iloc[2] < scored["test accuracy"].iloc[0]
    assert list(per_class["label"]) == ["daisy", "roses"]


def test_finished_job_says_which_fit_trained_the_head_and_shows_the_model_card(registry) -> None:
    app = start(open_page("train"), steps=3)
    (run_id,) = home_runs(registry.runs_dir.parent)
    run = registry.get(run_id).run_dir
    assert run.read_request()["head_fit"] == "lbfgs"  # the default
    assert registry.get(run_id).wait(JOB_DEADLINE_S) == "done"
    app.run()
    assert not app.exception
    fit = [shown(c.value) for c in app.caption if c.value.startswith("Head fit: ")]
    assert fit == [
        (
            "Head fit: **L-BFGS, full batch on the cached features: converged after 3 iterations, "
            "L2 = 0.001 (chosen on the validation split)**"
        )
    ]
    [card] = [e for e in app.expander if e.label == "Model card (MODEL_CARD.md)"]
    [code] = card.code  # shown as its source: the card quotes folder names, never rendered
    text = code.value
    assert text == (run.path / "MODEL_CARD.md").read_text(encoding="utf-8").strip()
    assert "## Intended use and limits" in text and "It knows 2 classes: daisy, roses." in text


def test_choosing_sgd_in_the_form_asks_for_retrain_py_loop(registry) -> None:
    app = open_page("train")
    app.radio(key="train_head_fit").set_value("sgd")
    app = start(app, steps=3)
    (run_id,) = home_runs(registry.runs_dir.parent)
    assert registry.get(run_id).run_dir.read_request()["head_fit"] == "sgd"
    assert registry.get(run_id).wait(JOB_DEADLINE_S) == "done"
    app.run()
    fit = [shown(c.value) for c in app.caption if c.value.startswith("Head fit: ")]
    assert fit == ["Head fit: **SGD (retrain.py's loop): 3 steps of 100 photos at learning rate 0.01**"]


def test_the_unknown_rules_false_rejection_set_in_the_form_reaches_the_run(registry) -> None:
    app = open_page("train")
    assert app.number_input(key="train_unknown").value == TrainConfig.default("unknown_false_rejection")
    app.number_input(key="train_unknown").set_value(0.1)
    app = start(app, steps=3)
    assert not app.exception
    (run_id,) = home_runs(registry.runs_dir.parent)
    assert registry.get(run_id).run_dir.read_request()["unknown_false_rejection"] == 0.1


def test_second_tab_reattaches_to_the_running_job_instead_of_starting_another(registry, gate) -> None:
    start(open_page("train"), steps=3)
    (run_id,) = home_runs(registry.runs_dir.parent)
    other_tab = open_page("train")
    assert not other_tab.exception
    assert any(run_id in shown(h.value) for h in other_tab.subheader)
    assert other_tab.button(key=START).disabled
    assert other_tab.button(key="train_cancel")
    gate.touch()
    assert registry.get(run_id).wait(JOB_DEADLINE_S) == "done"
    assert home_runs(registry.runs_dir.parent) == [run_id]


def test_live_view_shows_the_step_counter_while_running(registry, gate) -> None:
    app = start(open_page("train"), steps=5)
    (run_id,) = home_runs(registry.runs_dir.parent)
    job = registry.get(run_id)
    # the fake writes step 1 then holds: poll the page until it shows it
    wait_for(lambda: job.run_dir.read_events(0)[0], timeout=JOB_DEADLINE_S, what="events")
    wait_for(
        lambda: any("Step 1 of 5" in (p.proto.text or "") for p in app.run().get("progress")),
        timeout=JOB_DEADLINE_S,
        what="the step counter",
    )
    texts = [p.proto.text for p in app.get("progress")]
    assert any(shown(t).startswith("Bottlenecks: 3/6") for t in texts)
    gate.touch()
    job.wait(JOB_DEADLINE_S)


def test_cancel_button_stops_the_job(registry, gate) -> None:
    app = start(open_page("train"), steps=3)
    (run_id,) = home_runs(registry.runs_dir.parent)
    app.run()
    app.button(key="train_cancel").click().run()
    assert registry.get(run_id).wait(JOB_DEADLINE_S) == "cancelled"


def test_backbone_without_weights_disables_start_and_says_where_to_put_them(registry) -> None:
    from engine.models.registry import list_backbones

    missing = [b for b in list_backbones() if not b.weights_available()]
    if not missing:
        pytest.skip("every backbone has its weights on this machine")
    app = open_page("train")
    app.selectbox(key="train_architecture").set_value(missing[0].name).run()
    assert not app.exception
    assert missing[0].weights_hint() in shown(app.warning[0].value)
    assert app.button(key=START).disabled


def test_a_dataset_that_cannot_be_trained_on_disables_start_and_says_why(registry, tmp_path) -> None:
    from tests.support.factories import write_class_folders
    from ui import state

    root = write_class_folders(tmp_path / "one-class", {"cats": 5})
    app = open_page("dataset")
    app.radio(key="dataset_source").set_value("Local folder").run()
    app.text_input(key="dataset_local_path").input(str(root)).run()
    assert app.session_state[state.DATASET_KEY] == str(root)
    app.switch_page("app_pages/train.py").run()
    assert not app.exception
    assert app.error and "Cannot train on this dataset" in app.error[0].value
    assert app.button(key=START).disabled


# The form's inputs and the sliders, by widget key: each offers exactly what TrainConfig.validate allows.
FORM_FIELDS = {
    "train_steps": "how_many_training_steps",
    "train_lr": "learning_rate",
    "train_batch": "train_batch_size",
    "train_eval_interval": "eval_step_interval",
    "train_seed": "seed",
    "train_fine_tune_blocks": "fine_tune_blocks",
    "train_fine_tune_lr": "fine_tune_learning_rate",
    "validation_pct": "validation_percentage",
    "testing_pct": "testing_percentage",
    "train_unknown": "unknown_false_rejection",
}
SPLIT_FIELDS = ("validation_percentage", "testing_percentage")
FORM_SLIDERS = {
    "train_crop": "random_crop",
    "train_scale": "random_scale",
    "train_bright": "random_brightness",
}


def _outside(value: float, step: float, kind: type) -> float:
    if kind is int:
        return kind(value + step)
    if step > 0:
        return value * 2
    return value * 0.5 if value > 0 else value - 0.01  # a lower end of 0: just below it


def test_form_limits_are_the_limits_validate_enforces(registry) -> None:
    app = open_page("train")
    assert not app.exception
    widgets = [(app.number_input(key=k), f) for k, f in FORM_FIELDS.items()]
    widgets += [(app.slider(key=k), f) for k, f in FORM_SLIDERS.items()]
    for widget, field in widgets:
        rule = TrainConfig.setting(field)
        assert (widget.min, widget.max) == (rule.low, rule.high), field
        assert widget.help == rule.help, field
        kind = float if isinstance(TrainConfig.default(field), float) else int
        # the ends the form offers are accepted, one step beyond them is refused
        # (the other split share at 0, so that their sum stays under 100)
        others = {k: 0 for k in SPLIT_FIELDS if k != field} if field in SPLIT_FIELDS else {}
        for edge in (rule.low, rule.high):
            TrainConfig(**{field: kind(edge), **others}).validate()
        for beyond in (_outside(rule.low, -1, kind), _outside(rule.high, 1, kind)):
            with pytest.raises(StudioError, match=f"--{field}="):
                TrainConfig(**{field: beyond, **others}).validate()


def test_heal_warnings_show_in_the_live_view_and_then_in_the_report(registry, gate, monkeypatch) -> None:
    from tests.support.fake_trainer import HEAL_WARNINGS

    monkeypatch.setenv("FAKE_TRAINER_HEAL", "1")
    app = start(open_page("train"), steps=3)
    (run_id,) = home_runs(registry.runs_dir.parent)
    run = registry.get(run_id).run_dir
    wait_for(lambda: any(e["event"] == "step" for e in run.read_events(0)[0]), what="the first step")
    app.run()
    assert not app.exception
    assert [shown(w.value) for w in app.warning] == list(HEAL_WARNINGS)
    gate.touch()
    assert registry.get(run_id).wait(JOB_DEADLINE_S) == "done"
    app.run()
    assert not app.exception
    assert "Final test accuracy" in [m.label for m in app.metric]
    assert [shown(w.value) for w in app.warning] == list(HEAL_WARNINGS)  # once each, in the report


def test_a_finished_run_folder_with_heal_warnings_shows_each_once_escaped() -> None:
    from tests.support.app import write_run

    run = write_run(state="done")
    same = "the scan cache was damaged; moved aside and rebuilt"
    hostile = "status.json of ![x](https:example.invalid) was unreadable; rebuilt"
    run.update_status(warnings=[same, {"message": hostile}, 42])
    run.append_event({"event": "warning", "time": 1.0, "message": same})
    run.append_event({"event": "warning", "time": 2.0, "detail": "events.jsonl: partial line dropped"})
    app = open_page("train")
    assert not app.exception
    assert [shown(w.value) for w in app.warning] == [same, hostile, "events.jsonl: partial line dropped"]
    assert not any("![x](" in w.value for w in app.warning)
