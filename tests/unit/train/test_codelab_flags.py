"""retrain.py's flags that the codelab's help lists, working here: model_dir, intermediate graphs,
final_tensor_name, the `_quantized` architecture suffix."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engine.core import paths
from engine.core.rundir import RunDir
from engine.serve.model_info import read_info
from engine.train.retrain import retrain
from tests.support.tiny_model import ARCH, LABELS, TinyRun, tiny_config


def test_model_dir_is_looked_in_first_and_keeps_every_file_used(tmp_path: Path) -> None:
    cached = paths.cache_dir() / "backbones" / "only-in-cache.tflite"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"x")
    mine = tmp_path / "models"
    (mine).mkdir()
    (mine / "in-both.tflite").write_bytes(b"y")
    with paths.using_model_dir(mine):
        # found in the cache and kept in model_dir, as retrain.py leaves its weights there
        assert paths.backbone_file("only-in-cache.tflite") == mine / "only-in-cache.tflite"
        assert (mine / "only-in-cache.tflite").read_bytes() == b"x" and cached.read_bytes() == b"x"
        assert paths.backbone_file("in-both.tflite") == mine / "in-both.tflite"  # model_dir first
        assert paths.backbone_file("new.tflite") == mine / "new.tflite"  # new files kept there
        assert paths.weights_dirs()[0] == mine
    assert paths.model_dir() is None  # only within the block
    assert paths.backbone_file("new.tflite").parent == paths.cache_dir() / "backbones"


def test_a_quantized_architecture_name_trains_the_float_one_with_a_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from engine.commands.retrain import config_from_args
    from engine.train.config import TrainConfig

    parser = argparse.ArgumentParser()
    TrainConfig.add_arguments(parser)
    parser.add_argument("--random_weights", action="store_true")
    config = config_from_args(parser.parse_args(["--architecture", "mobilenet_0.25_128_quantized"]))
    assert config.architecture == "mobilenet_0.25_128"
    assert "--export for an int8 TFLite model" in capsys.readouterr().err


@pytest.mark.slow
def test_intermediate_models_are_saved_every_n_steps_and_carry_their_labels(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    import keras

    folder = tmp_path / "intermediate"
    config = tiny_config(
        tiny_run.data_dir, tiny_run.bottleneck_dir, how_many_training_steps=12,
        intermediate_store_frequency=5, intermediate_output_graphs_dir=str(folder),
        final_tensor_name="final_output",
    )  # fmt: skip
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    retrain(config, run)
    saved = sorted(p.name for p in folder.iterdir())
    assert saved == ["intermediate_10.keras", "intermediate_5.keras"]
    assert read_info(folder / "intermediate_5.keras")["labels"] == LABELS
    model = keras.saving.load_model(run.model_path, compile=False)
    assert model.layers[-1].name == "final_output"
    assert model.output_names == ["final_output"] or model.layers[-1].output.name.startswith(
        "final_output"
    )
