"""`retrain --architecture small_cnn` with no step or epoch flag trains the Train page's recipe, and says so."""

from __future__ import annotations

import pytest

from engine.cli import build_parser
from engine.commands.retrain import config_from_args
from engine.models.scratch import FORM_DEFAULTS


def _config(*flags: str):
    return config_from_args(build_parser().parse_args(["retrain", "--image_dir", "photos", *flags]))


def test_no_step_flag_gives_the_train_pages_recipe_and_a_note(capsys) -> None:
    config = _config("--architecture", "small_cnn")
    assert config.how_many_training_steps == FORM_DEFAULTS["how_many_training_steps"]
    assert config.train_batch_size == FORM_DEFAULTS["train_batch_size"]
    note = capsys.readouterr().err
    assert "trains from scratch: using the Train page's recipe, 500 steps of 32 photos" in note


@pytest.mark.parametrize(
    ("flags", "steps", "batch"),
    [
        (("--how_many_training_steps", "4000"), 4000, 100),  # a step count given: retrain.py's flags
        (("--how_many_training_steps", "7", "--train_batch_size", "100"), 7, 100),
        (("--train_batch_size", "8"), 500, 8),
    ],
)
def test_a_given_flag_wins_over_the_recipe(flags, steps, batch) -> None:
    config = _config("--architecture", "small_cnn", *flags)
    assert (config.how_many_training_steps, config.train_batch_size) == (steps, batch)


def test_epochs_given_keep_the_recipe_out() -> None:
    config = _config("--architecture", "small_cnn", "--epochs", "3")
    assert config.epochs == 3
    assert config.how_many_training_steps == 4000  # retrain.py's default, unused with --epochs


def test_a_pretrained_backbone_keeps_retrain_pys_defaults(capsys) -> None:
    config = _config("--architecture", "efficientnet_lite0")
    assert (config.how_many_training_steps, config.train_batch_size) == (4000, 100)
    assert "recipe" not in capsys.readouterr().err
