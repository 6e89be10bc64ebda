"""engine.train.config: TrainConfig, one frozen description of a run that flags, form and checks share."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import StudioError
from engine.train.config import TrainConfig


def test_epochs_turn_into_steps_over_the_training_split() -> None:
    assert TrainConfig(epochs=2, train_batch_size=10).total_steps(95) == 19
    assert TrainConfig(how_many_training_steps=123).total_steps(95) == 123


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("how_many_training_steps", 0, "--how_many_training_steps"),
        ("learning_rate", -1.0, "--learning_rate"),
        ("lr_schedule", "zigzag", "--lr_schedule"),
        ("testing_percentage", 100, "--testing_percentage"),
        ("validation_percentage", 95, "--validation_percentage"),
        ("train_batch_size", 0, "--train_batch_size"),
        ("test_batch_size", 0, "--test_batch_size"),
        ("dropout", 1.0, "--dropout"),
        ("random_crop", 101, "--random_crop"),
        ("class_weights", "heavy", "--class_weights"),
        ("fine_tune_blocks", -1, "--fine_tune_blocks"),
    ],
)
def test_bad_setting_is_refused_naming_the_flag(field: str, value: Any, flag: str) -> None:
    values: dict[str, Any] = {"testing_percentage": 10}
    if field == "validation_percentage":
        values["testing_percentage"] = 10  # 95 + 10 goes over 100
    values[field] = value
    config = TrainConfig(**values)
    with pytest.raises(StudioError, match=flag):
        config.validate()


def test_validate_returns_the_same_config_for_chaining() -> None:
    config = TrainConfig(how_many_training_steps=5)
    assert config.validate() is config


def test_config_is_frozen() -> None:
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.how_many_training_steps = 5  # type: ignore[misc]


def test_validation_and_test_shares_together_must_stay_under_100() -> None:
    TrainConfig(validation_percentage=45, testing_percentage=54).validate()
    with pytest.raises(StudioError, match="under 100"):
        TrainConfig(validation_percentage=50, testing_percentage=50).validate()


@pytest.mark.parametrize(
    ("field", "value"),
    [("how_many_training_steps", 2.5), ("flip_left_right", 1), ("learning_rate", True),
     ("image_dir", 3), ("test_batch_size", -2), ("weights", "random"), ("dropout", float("nan"))],
)  # fmt: skip
def test_values_of_the_wrong_type_or_outside_also_are_refused(field: str, value: Any) -> None:
    with pytest.raises(StudioError, match=f"--{field}="):
        TrainConfig(**{field: value}).validate()


def test_minus_one_means_all_for_the_evaluation_batches() -> None:
    TrainConfig(test_batch_size=-1, validation_batch_size=-1).validate()


# ---------------------------------------------------------------- as data

NON_DEFAULT = {
    "image_dir": "/photos",
    "architecture": "mobilenet_v2",
    "image_size": 160,
    "head_fit": "sgd",
    "how_many_training_steps": 123,
    "epochs": 2.5,
    "learning_rate": 0.05,
    "lr_schedule": "cosine",
    "testing_percentage": 15,
    "validation_percentage": 5,
    "eval_step_interval": 7,
    "train_batch_size": 32,
    "test_batch_size": 50,
    "validation_batch_size": -1,
    "dropout": 0.2,
    "class_weights": "balanced",
    "flip_left_right": True,
    "random_crop": 10,
    "random_scale": 20,
    "random_brightness": 30,
    "fine_tune_blocks": 2,
    "fine_tune_learning_rate": 0.001,
    "seed": 42,
    "bottleneck_dir": "/cache/bn",
    "summaries_dir": "/tb",
    "output_graph": "/out/graph.keras",
    "output_labels": "/out/labels.txt",
    "model_dir": "/models",
    "intermediate_output_graphs_dir": "/out/intermediate",
    "intermediate_store_frequency": 100,
    "final_tensor_name": "final_output",
    "print_misclassified_test_images": True,
    "export": True,
    "unknown_false_rejection": 0.1,
    "runtime": "tensorflow",
    "ray": "10.0.0.5:6379",
    "weights": None,
}


def test_non_default_table_sets_every_field_to_something_else() -> None:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(NON_DEFAULT) == names
    assert all(NON_DEFAULT[name] != TrainConfig.default(name) for name in names)


def test_as_dict_and_from_dict_round_trip_through_json() -> None:
    config = TrainConfig(**NON_DEFAULT).validate()
    data = json.loads(json.dumps(config.as_dict()))
    assert data == NON_DEFAULT
    assert TrainConfig.from_dict(data) == config
    assert TrainConfig.from_dict(TrainConfig().as_dict()) == TrainConfig()


def test_from_dict_ignores_keys_that_are_not_settings() -> None:
    data = {**TrainConfig(seed=3).as_dict(), "run_id": "x", "versions": {"python": "3"}}
    assert TrainConfig.from_dict(data) == TrainConfig(seed=3)


@pytest.mark.parametrize("data", [["--seed", "3"], "seed=3", None])
def test_from_dict_refuses_what_is_not_a_mapping(data: object) -> None:
    with pytest.raises(StudioError, match="JSON object"):
        TrainConfig.from_dict(data)  # type: ignore[arg-type]


def test_replace_gives_a_new_config_and_keeps_the_original() -> None:
    config = TrainConfig(seed=1)
    other = config.replace(seed=2, how_many_training_steps=10)
    assert (other.seed, other.how_many_training_steps) == (2, 10)
    assert (config.seed, config.how_many_training_steps) == (1, 4000)


def test_resolved_returns_a_new_config_and_leaves_the_original_unchanged(tmp_path: Path) -> None:
    config = TrainConfig(image_dir=str(tmp_path), how_many_training_steps=9)
    before = config.as_dict()
    resolved = config.resolved()
    assert resolved is not config
    assert config.as_dict() == before
    assert (config.architecture, config.image_size, config.seed) == (None, None, None)
    assert (resolved.architecture, resolved.image_size) == ("efficientnet_lite0", 224)
    assert isinstance(resolved.seed, int) and 0 <= resolved.seed <= 2**31 - 1
    assert (resolved.image_dir, resolved.how_many_training_steps) == (str(tmp_path), 9)
    # already concrete settings stay as they are
    again = resolved.resolved()
    assert again == resolved and again is not resolved


def test_resolved_without_image_dir_uses_the_demo_dataset(studio_home: Path, monkeypatch) -> None:
    from engine.data import demo

    made: list[object] = []

    def fake_demo(dest: object = None, progress: object = None) -> Path:
        made.append(dest)
        return studio_home / "datasets" / "demo"

    monkeypatch.setattr(demo, "ensure_demo_dataset", fake_demo)
    config = TrainConfig(seed=5)
    resolved = config.resolved()
    assert resolved.image_dir == str(studio_home / "datasets" / "demo") and made == [None]
    assert config.image_dir is None and resolved.seed == 5


def test_resolved_refuses_a_size_the_backbone_does_not_offer(tmp_path: Path) -> None:
    with pytest.raises(StudioError, match="--image_size=200 is not available for efficientnet_lite0"):
        TrainConfig(image_dir=str(tmp_path), image_size=200).resolved()


def test_job_folder_name_is_the_backbone_name() -> None:
    assert TrainConfig().job_folder_name() == "efficientnet_lite0"
    assert TrainConfig(architecture="mobilenet_v2").job_folder_name() == "mobilenet_v2"
    with pytest.raises(StudioError, match="no_such_net"):
        TrainConfig(architecture="no_such_net").job_folder_name()
    assert TrainConfig.job_command == "retrain"


# ---------------------------------------------------------------- flags from the field metadata


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    TrainConfig.add_arguments(parser)
    return parser


def test_every_field_with_a_flag_gets_one_with_its_help_default_and_choices() -> None:
    actions = {a.dest: a for a in _parser()._actions if a.dest != "help"}
    flagged = [f.name for f in dataclasses.fields(TrainConfig) if TrainConfig.setting(f.name).flag]
    assert sorted(actions) == sorted(flagged)
    assert "weights" not in actions  # no flag: random weights are for tests only
    for name, action in actions.items():
        rule = TrainConfig.setting(name)
        assert action.option_strings == [f"--{name}"]
        assert action.help == rule.help
        assert action.default == TrainConfig.default(name)
        if rule.choices is not None:
            assert tuple(action.choices) == rule.choices


def test_flags_parse_into_the_config_they_describe() -> None:
    args = _parser().parse_args(
        ["--how_many_training_steps", "12", "--learning_rate", "0.5", "--flip_left_right",
         "--lr_schedule", "cosine", "--seed", "4", "--image_size", "160", "--epochs", "1.5"]
    )  # fmt: skip
    config = TrainConfig.from_args(args)
    assert (config.how_many_training_steps, config.learning_rate, config.flip_left_right) == (
        12,
        0.5,
        True,
    )
    assert (config.lr_schedule, config.seed, config.image_size, config.epochs) == ("cosine", 4, 160, 1.5)
    assert TrainConfig.from_args(_parser().parse_args([])) == TrainConfig()
    assert TrainConfig.from_args(_parser().parse_args([]), weights=None).weights is None


def test_a_flag_outside_its_choices_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--lr_schedule", "zigzag"])
