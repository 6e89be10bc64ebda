"""`python -m engine retrain`: retrain.py's flags and output, request.json from the job runner, clear errors.

The slow tests share one CLI training (`trained`): it is the command's own
stdout, stderr and copy flags that are under test, so it runs through the
CLI in a subprocess rather than reading the session's shared run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.core.rundir import RunDir
from engine.train.config import TrainConfig
from tests.support.cli import REPO_ROOT, run_engine
from tests.support.factories import write_class_folders
from tests.support.waiting import wait_for

TINY_FLAGS = [
    "--architecture", "efficientnet_lite0",
    "--image_size", "128",
    "--how_many_training_steps", "20",
    "--train_batch_size", "16",
    "--testing_percentage", "20",
    "--validation_percentage", "20",
    "--seed", "3",
    "--head_fit", "sgd",  # retrain.py's loop: a known number of steps
    "--random_weights",  # the command's plumbing is under test, not ImageNet features
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cli")
    data = write_class_folders(tmp / "data", {"red": 8, "green": 8, "blue": 8})
    out = run_engine(
        "retrain", "--image_dir", str(data), "--runs_dir", str(tmp / "runs"),
        "--bottleneck_dir", str(tmp / "bn"), "--output_graph", str(tmp / "copy" / "graph.keras"),
        "--output_labels", str(tmp / "copy" / "labels.txt"), "--summaries_dir", str(tmp / "summaries"),
        "--print_misclassified_test_images", *TINY_FLAGS,
    )  # fmt: skip
    runs = sorted((tmp / "runs").iterdir())
    return {"out": out, "tmp": tmp, "data": data, "run": RunDir(runs[-1]) if runs else None}


@pytest.mark.slow
def test_retrain_prints_steps_and_ends_with_final_accuracy(trained) -> None:
    out = trained["out"]
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert "Step 10: Train accuracy = " in out.stdout
    assert "Step 10: Cross entropy = " in out.stdout
    assert "Step 20: Validation accuracy = " in out.stdout
    assert lines[-1].startswith("Final test accuracy = ") and lines[-1].endswith("(N=8)")
    assert "=== MISCLASSIFIED TEST IMAGES" in out.stdout


@pytest.mark.slow
def test_retrain_draws_a_bottleneck_progress_bar_on_stderr(trained) -> None:
    assert "bottlenecks [" in trained["out"].stderr
    assert "24/24 images" in trained["out"].stderr


@pytest.mark.slow
def test_retrain_writes_copies_where_asked(trained) -> None:
    tmp, run = trained["tmp"], trained["run"]
    assert (tmp / "copy" / "graph.keras").read_bytes() == run.model_path.read_bytes()
    assert (tmp / "copy" / "labels.txt").read_text() == "blue\ngreen\nred\n"
    assert list((tmp / "summaries" / run.run_id).glob("train/events.out.tfevents.*"))


@pytest.mark.slow
def test_retrain_into_a_given_run_dir_records_its_pid(trained, tmp_path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    out = run_engine(
        "retrain", "--run_dir", str(run.path), "--image_dir", str(trained["data"]),
        "--bottleneck_dir", str(trained["tmp"] / "bn"), *TINY_FLAGS,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    status = run.read_status()
    assert status["state"] == "done" and isinstance(status["pid"], int)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run.run_id]


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        ("two_classes", ["--architecture", "no_such_net"], "no_such_net"),
        ("nothing", [], "is not a folder"),
        ("one_class", [], "class"),
        ("two_classes", ["--how_many_training_steps", "0"], "--how_many_training_steps"),
    ],
)
def test_bad_input_is_one_line_error_exit_2(tmp_path, make: str, flags: list[str], message: str) -> None:
    data = tmp_path / "data"
    if make == "two_classes":
        write_class_folders(data, {"a": 3, "b": 3})
    elif make == "one_class":
        write_class_folders(data, {"only": 5})
    out = run_engine(
        "retrain", "--image_dir", str(data), "--runs_dir", str(tmp_path / "runs"), *flags,
        home=tmp_path / "home",
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    error_lines = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert "Traceback" not in out.stderr


def test_cli_flags_map_to_train_config() -> None:
    from engine.cli import build_parser
    from engine.commands.retrain import config_from_args

    args = build_parser().parse_args(
        ["retrain", "--learning_rate", "0.5", "--flip_left_right", "--random_crop", "10",
         "--test_batch_size", "-1", "--lr_schedule", "cosine", "--class_weights", "balanced"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.learning_rate, config.flip_left_right, config.random_crop) == (0.5, True, 10)
    assert (config.lr_schedule, config.class_weights, config.weights) == (
        "cosine",
        "balanced",
        "imagenet",
    )
    assert json.loads(json.dumps(config.as_dict()))["how_many_training_steps"] == 4000


@pytest.mark.slow
def test_sigterm_cancels_between_steps_and_keeps_the_run(trained, tmp_path) -> None:
    import signal

    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("--how_many_training_steps") + 1] = "100000"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "retrain", "--run_dir", str(run.path),
         "--image_dir", str(trained["data"]), "--bottleneck_dir", str(trained["tmp"] / "bn"), *flags],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: '"step": 20,' in (run.events_path.read_text() if run.events_path.exists() else ""),
                 timeout=180, what="step 20")  # fmt: skip
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 3
    finally:
        if process.poll() is None:
            process.kill()
    status = run.read_status()
    assert status["state"] == "cancelled" and status["step"] >= 20
    assert run.model_path.is_file() and run.labels_path.is_file()


def test_bad_flag_with_run_dir_marks_that_run_failed(tmp_path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    out = run_engine(
        "retrain", "--run_dir", str(run.path), "--architecture", "no_such_net", home=tmp_path
    )
    assert out.returncode == 2
    status = run.read_status()
    assert status["state"] == "failed" and "no_such_net" in status["error"]


# ---------------------------------------------------------------- flags from TrainConfig's metadata


@pytest.fixture(scope="module")
def retrain_help() -> str:
    out = run_engine("retrain", "--help")
    assert out.returncode == 0, out.stderr
    return out.stdout


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_retrain_help_lists_every_setting_flag_with_its_help_text(retrain_help: str) -> None:
    import dataclasses

    flat = _flat(retrain_help)
    for field in dataclasses.fields(TrainConfig):
        rule = TrainConfig.setting(field.name)
        if rule.flag:
            assert f"--{field.name}" in retrain_help, field.name
            assert _flat(rule.help) in flat, field.name
        else:
            assert f"--{field.name}" not in retrain_help, field.name


def test_retrain_help_shows_real_defaults_and_the_choices(retrain_help: str) -> None:
    flat = _flat(retrain_help)
    assert "(default: 4000)" in flat and "(default: 0.01)" in flat
    assert "{constant,cosine}" in flat and "{litert,tensorflow}" in flat
    assert "--run_dir" in retrain_help and "request.json" in flat


# ---------------------------------------------------------------- --run_dir DIR with DIR/request.json


def test_retrain_with_run_dir_reads_the_settings_from_its_request_json(tmp_path: Path) -> None:
    data = write_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    # the request asks for an architecture that does not exist; the flags ask for a valid one
    run.write_request(TrainConfig(image_dir=str(data), architecture="no_such_net").as_dict())
    out = run_engine(
        "retrain", "--run_dir", str(run.path), "--architecture", "efficientnet_lite0", home=tmp_path
    )
    assert out.returncode == 2, out.stderr
    assert "no_such_net" in out.stderr and "Traceback" not in out.stderr
    status = run.read_status()
    assert status["state"] == "failed" and "no_such_net" in status["error"]


def test_retrain_with_run_dir_refuses_a_bad_setting_in_its_request(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    run.write_request({**TrainConfig().as_dict(), "how_many_training_steps": 0})
    out = run_engine("retrain", "--run_dir", str(run.path), home=tmp_path)
    assert out.returncode == 2
    assert "--how_many_training_steps=0 is not allowed" in out.stderr
    assert run.read_status()["state"] == "failed"


def test_retrain_with_run_dir_and_a_damaged_request_fails_that_run(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    run.request_path.write_text("{not json")
    out = run_engine("retrain", "--run_dir", str(run.path), home=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "request.json" in out.stderr
    assert run.read_status()["state"] == "failed"


@pytest.mark.slow
def test_retrain_with_run_dir_trains_what_its_request_json_asks(tmp_path: Path) -> None:
    data = write_class_folders(tmp_path / "data", {"a": 4, "b": 4})
    run = RunDir.create(tmp_path / "runs", backbone="efficientnet_lite0")
    request = TrainConfig(
        image_dir=str(data), image_size=128, how_many_training_steps=3, eval_step_interval=1,
        train_batch_size=4, testing_percentage=25, validation_percentage=25, seed=5, weights=None,
        head_fit="sgd",
    )  # fmt: skip
    run.write_request(request.as_dict())
    # flags are ignored when the run folder holds a request
    out = run_engine(
        "retrain", "--run_dir", str(run.path), "--how_many_training_steps", "50", home=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert run.read_status()["state"] == "done"
    steps = [e["step"] for e in run.read_events()[0] if e["event"] == "step"]
    assert steps == [1, 2, 3]
    config = run.read_config()
    asked = request.replace(architecture="efficientnet_lite0").as_dict()
    # config.json records every setting of the request ("runtime" there is the one actually used)
    assert {k: config[k] for k in asked if k != "runtime"} == {
        k: v for k, v in asked.items() if k != "runtime"
    }
    assert run.read_request() == request.as_dict()
