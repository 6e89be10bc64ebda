"""The Train page's inputs take their limits and help from TrainConfig's field metadata."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.errors import StudioError
from engine.train.config import TrainConfig
from ui.render import setting_input


class RecordingContainer:
    """Stands in for a Streamlit column: records what `number_input` was asked to draw."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def number_input(self, label: str, **kwargs: Any) -> Any:
        self.calls.append((label, kwargs))
        return kwargs.get("value")


def test_setting_input_for_random_crop_offers_what_validate_accepts() -> None:
    column = RecordingContainer()
    setting_input("random_crop", "Random crop %", key="crop", container=column, value=0)
    [(label, drawn)] = column.calls
    assert label == "Random crop %"
    assert (drawn["min_value"], drawn["max_value"]) == (0, 100)
    assert drawn["help"] == TrainConfig.setting("random_crop").help
    assert TrainConfig(random_crop=100).validate().random_crop == 100
    with pytest.raises(StudioError, match="--random_crop=101"):
        TrainConfig(random_crop=101).validate()


# The settings the Train form draws with `setting_input` (the page test checks the drawn widgets).
FORM_NUMBER_SETTINGS = [
    "how_many_training_steps",
    "learning_rate",
    "train_batch_size",
    "eval_step_interval",
    "seed",
    "fine_tune_blocks",
    "fine_tune_learning_rate",
    "validation_percentage",
    "testing_percentage",
]


@pytest.mark.parametrize("name", FORM_NUMBER_SETTINGS)
def test_every_form_number_offers_its_metadata_limits_typed_like_the_field(name: str) -> None:
    rule = TrainConfig.setting(name)
    column = RecordingContainer()
    setting_input(name, name, key=name, container=column)
    [(_, drawn)] = column.calls
    assert (drawn["min_value"], drawn["max_value"]) == (rule.low, rule.high)
    kind = float if "float" in str(TrainConfig.__dataclass_fields__[name].type) else int
    assert type(drawn["min_value"]) is kind and type(drawn["max_value"]) is kind
