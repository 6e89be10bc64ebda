"""The Predict page's unknown answer (AppTest): a hand-set red/blue model with a max-probability rule.

A grey photo is half red, half blue to that model (probabilities 0.5/0.5), so the
rule (unknown above 1 - 0.7 = 0.3) rejects it; a red photo is kept.
"""

from __future__ import annotations

from engine.serve.unknown import Rule, RuleSet
from engine.train.unknown import write_rules
from tests.support.app import open_page, png_bytes, shown, write_colour_model_run

RED, GREY = (220, 20, 20), (128, 128, 128)


def _run_with_rule():
    run = write_colour_model_run()
    rule = Rule("max_probability", 0.3)
    write_rules(run, RuleSet(rule, rule, 0.05, {"classes": 2}))
    return run


def _text(app) -> str:
    return " ".join(shown(m.value) for m in app.markdown)


def _upload(app, *photos) -> None:
    app.file_uploader(key="predict_uploads").set_value(
        [(f"{name}.png", png_bytes(colour), "image/png") for name, colour in photos]
    )
    app.run()


def test_a_photo_of_none_of_the_classes_is_unknown_with_its_nearest_classes() -> None:
    _run_with_rule()
    app = open_page("predict")
    _upload(app, ("grey", GREY), ("red", RED))
    assert not app.exception
    assert "unknown — none of red, blue" in _text(app)  # the model's label order
    assert "**red** ·" in _text(app)
    assert len(app.get("plotly_chart")) == 2  # the grey photo's nearest classes are still drawn
    table = app.dataframe[0].value
    assert table["label"].tolist() == ["unknown", "red"]
    assert table["nearest"].iloc[0] in ("red", "blue")


def test_the_switch_turns_it_off() -> None:
    _run_with_rule()
    app = open_page("predict")
    app.toggle(key="predict_unknown").set_value(False)
    _upload(app, ("grey", GREY))
    assert not app.exception
    assert "unknown" not in _text(app)


def test_an_old_run_says_it_has_no_rule_and_names_a_class() -> None:
    write_colour_model_run()
    app = open_page("predict")
    _upload(app, ("grey", GREY))
    assert not app.exception
    assert any("no unknown rule" in c.value for c in app.caption)
    assert "unknown" not in _text(app)
