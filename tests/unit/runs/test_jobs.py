"""engine.runs.jobs: training as a subprocess job, with a small real fake trainer.

The fake trainer below is a real program speaking the trainer's side of the
contract (its settings from request.json, status.json with its pid, step
events, the cancel flag, SIGTERM), so the job lifecycle is exercised for real:
processes start, write, get signals and die. How it misbehaves (crash, ignore
the cancel flag or SIGTERM) is set by flags in the registry's command, placed
before the `--run_dir DIR` the registry adds. Two slow tests at the end run
the real `python -m engine retrain`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.core.procs import process_alive, process_start_ticks
from engine.core.rundir import RunDir
from engine.runs.jobs import (
    CANCELLED_MESSAGE,
    DIED_MESSAGE,
    NEVER_STARTED_MESSAGE,
    JobRegistry,
    TrainingJob,
)
from engine.runs.listing import iter_run_dirs
from engine.train.config import TrainConfig
from tests.support.factories import write_class_folders
from tests.support.waiting import wait_for

FAKE_TRAINER = textwrap.dedent(
    """
    import argparse, os, signal, sys, time
    from engine.core.rundir import RunDir

    parser = argparse.ArgumentParser()
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--step_s", type=float, default=0.05)
    parser.add_argument("--crash_at", type=int, default=-1)
    parser.add_argument("--ignore_cancel", action="store_true")
    parser.add_argument("--ignore_sigterm", action="store_true")
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    steps = run.read_request()["how_many_training_steps"]

    def on_term(signum, frame):
        print("got SIGTERM", flush=True)
        run.write_status("cancelled", error="terminated")
        sys.exit(143)

    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.ignore_sigterm else on_term)
    run.write_status("running", pid=os.getpid())
    print("fake trainer started", os.getcwd(), flush=True)
    for step in range(1, steps + 1):
        if run.cancel_requested() and not args.ignore_cancel:
            run.write_status("cancelled", step=step - 1)
            sys.exit(0)
        if step == args.crash_at:
            print("crashing hard at step", step, flush=True)
            os._exit(3)
        time.sleep(args.step_s)
        run.append_event({"event": "step", "step": step, "total_steps": steps})
        print(f"Step {step}: Train accuracy = 50.0%", flush=True)
    run.write_status("done", test_accuracy=1.0, step=steps)
    """
)


def request(steps: int) -> TrainConfig:
    """What the fake trainer is asked to do: `steps` steps (read from the run's request.json)."""
    return TrainConfig(how_many_training_steps=steps)


LONG = request(100_000)


@pytest.fixture
def registry(tmp_path: Path) -> JobRegistry:
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    return JobRegistry(runs_dir=tmp_path / "runs", command=[sys.executable, str(script)])


def with_flags(registry: JobRegistry, *flags: str) -> JobRegistry:
    """A registry on the same runs folder whose fake trainer gets `flags` (before `--run_dir`)."""
    assert registry.command is not None
    return JobRegistry(runs_dir=registry.runs_dir, command=[*registry.command, *flags])


@pytest.fixture(autouse=True)
def _kill_leftovers(tmp_path: Path):
    """A failing test must not leave a trainer running on the shared machine."""
    yield
    for run in iter_run_dirs(tmp_path / "runs"):
        pid = run.read_status().get("pid")
        if isinstance(pid, int) and process_alive(pid, run.read_status().get("pid_start")):
            os.killpg(pid, signal.SIGKILL)


def _steps(run: RunDir) -> list[int]:
    return [e["step"] for e in run.read_events()[0] if e.get("event") == "step"]


def test_started_job_runs_to_done_and_its_events_can_be_followed(registry: JobRegistry) -> None:
    job = registry.start(request(4))
    assert job.wait(timeout=60) == "done"
    assert _steps(job.run_dir) == [1, 2, 3, 4]
    assert job.run_dir.read_status()["test_accuracy"] == 1.0
    assert not job.running


def test_output_goes_to_train_log(registry: JobRegistry) -> None:
    job = registry.start(request(2))
    job.wait(timeout=60)
    log = job.run_dir.log_path.read_text()
    assert "Step 2: Train accuracy = 50.0%" in log
    # the job runs in its own run folder
    assert f"fake trainer started {job.run_dir.path}" in log


def test_events_are_visible_while_the_job_runs(registry: JobRegistry) -> None:
    job = registry.start(LONG)
    wait_for(lambda: len(_steps(job.run_dir)) >= 3, timeout=60)
    assert job.state == "running"
    job.cancel(grace_s=30, block=True)


def test_status_records_pid_and_its_start_time(registry: JobRegistry) -> None:
    job = registry.start(LONG)
    wait_for(lambda: job.state == "running", timeout=60)
    status = job.run_dir.read_status()
    assert status["pid"] == job.pid
    assert status["pid_start"] == process_start_ticks(job.pid) is not None
    job.cancel(grace_s=30, block=True)


def test_second_start_while_one_runs_names_the_active_run(registry: JobRegistry) -> None:
    job = registry.start(LONG)
    with pytest.raises(StudioError, match=job.run_id):
        registry.start(LONG)
    assert [r.run_id for r in iter_run_dirs(registry.runs_dir)] == [job.run_id]
    job.cancel(grace_s=30, block=True)


def test_fresh_registry_rediscovers_the_running_job(registry: JobRegistry) -> None:
    job = registry.start(LONG)
    fresh = JobRegistry(runs_dir=registry.runs_dir, command=registry.command)
    found = fresh.active()
    assert found is not None
    assert (found.run_id, found.pid) == (job.run_id, job.pid)
    with pytest.raises(StudioError, match="already"):
        fresh.start(LONG)
    job.cancel(grace_s=30, block=True)


def test_rediscovered_job_can_be_cancelled(registry: JobRegistry) -> None:
    job = registry.start(LONG)
    wait_for(lambda: job.state == "running", timeout=60)
    found = JobRegistry(runs_dir=registry.runs_dir).active()
    assert found is not None
    found.cancel(grace_s=30, block=True)
    assert job.wait(timeout=30) == "cancelled"


def test_cancel_flag_stops_the_trainer_between_steps(registry: JobRegistry) -> None:
    job = registry.start(LONG)
    wait_for(lambda: len(_steps(job.run_dir)) >= 2, timeout=60)
    job.cancel(grace_s=30, block=True)
    assert job.state == "cancelled"
    assert job.run_dir.read_status().get("error") is None  # the trainer itself stopped cleanly
    assert job.run_dir.cancel_requested()
    assert job._process is not None and job._process.returncode == 0


def test_cancel_returns_at_once_and_the_job_ends(registry: JobRegistry) -> None:
    job = registry.start(LONG)
    wait_for(lambda: job.state == "running", timeout=60)
    job.cancel(grace_s=30)
    assert job.run_dir.cancel_requested()
    assert job.wait(timeout=60) == "cancelled"


def test_cancel_sends_sigterm_when_the_flag_is_ignored(registry: JobRegistry) -> None:
    job = with_flags(registry, "--ignore_cancel").start(LONG)
    wait_for(lambda: job.state == "running", timeout=60)
    job.cancel(grace_s=0.5, terminate_grace_s=30, block=True)
    assert job.state == "cancelled"
    assert "got SIGTERM" in job.run_dir.log_path.read_text()
    assert job.run_dir.read_status()["error"] == "terminated"


def test_cancel_kills_a_trainer_that_ignores_sigterm(registry: JobRegistry) -> None:
    job = with_flags(registry, "--ignore_cancel", "--ignore_sigterm").start(LONG)
    wait_for(lambda: job.state == "running", timeout=60)
    job.cancel(grace_s=0.2, terminate_grace_s=0.5, block=True)
    assert not job.process_alive()
    assert job._process is not None and job._process.returncode == -signal.SIGKILL
    assert job.state == "cancelled"
    assert job.run_dir.read_status()["error"] == CANCELLED_MESSAGE


def test_cancel_of_a_finished_job_changes_nothing(registry: JobRegistry) -> None:
    job = registry.start(request(1))
    job.wait(timeout=60)
    job.cancel(block=True)
    assert job.state == "done"
    assert not job.run_dir.cancel_requested()


def test_crashed_trainer_is_failed_and_keeps_its_logs(registry: JobRegistry) -> None:
    job = with_flags(registry, "--crash_at", "3").start(request(10))
    assert job.wait(timeout=60) == "failed"
    status = job.run_dir.read_status()
    assert status["error"] == DIED_MESSAGE
    assert status["exit_code"] == 3
    assert "crashing hard at step 3" in job.run_dir.log_path.read_text()
    assert _steps(job.run_dir) == [1, 2]


def test_a_new_job_can_start_after_a_crash(registry: JobRegistry) -> None:
    with_flags(registry, "--crash_at", "1").start(request(5)).wait(timeout=60)
    job = registry.start(request(1))
    assert job.wait(timeout=60) == "done"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    "pid_fields",
    [
        pytest.param(lambda: {"pid": _dead_pid()}, id="process-gone"),
        pytest.param(lambda: {"pid": os.getpid(), "pid_start": 1}, id="pid-recycled"),
    ],
)
def test_running_status_without_its_process_is_marked_failed(registry: JobRegistry, pid_fields) -> None:
    run = RunDir.create(registry.runs_dir, backbone="efficientnet_lite0")
    run.write_status("running", **pid_fields())
    run.log_path.write_text("Step 1: ...\n")
    assert registry.active() is None
    status = run.read_status()
    assert (status["state"], status["error"]) == ("failed", DIED_MESSAGE)
    assert run.log_path.read_text() == "Step 1: ...\n"


def test_queued_run_being_launched_counts_as_active(registry: JobRegistry) -> None:
    run = RunDir.create(registry.runs_dir, backbone="efficientnet_lite0")
    run.write_status("queued")  # no pid yet: another process is spawning it
    found = registry.active()
    assert found is not None and found.run_id == run.run_id
    assert run.read_status()["state"] == "queued"


def test_queued_run_never_launched_is_marked_failed(registry: JobRegistry) -> None:
    run = RunDir.create(registry.runs_dir, backbone="efficientnet_lite0")
    run.write_status("queued")
    status = json.loads(run.status_path.read_text())
    status["updated_at"] = "2020-01-01T00:00:00+00:00"  # long past the launch window
    run.status_path.write_text(json.dumps(status))
    assert registry.active() is None
    assert run.read_status()["error"] == NEVER_STARTED_MESSAGE


def test_stale_running_status_does_not_block_a_new_start(registry: JobRegistry) -> None:
    stale = RunDir.create(registry.runs_dir, backbone="efficientnet_lite0")
    stale.write_status("running", pid=_dead_pid())
    job = registry.start(request(1))
    assert job.wait(timeout=60) == "done"
    assert stale.read_status()["state"] == "failed"


def test_get_returns_a_finished_job(registry: JobRegistry) -> None:
    job = registry.start(request(1))
    job.wait(timeout=60)
    assert JobRegistry(runs_dir=registry.runs_dir).get(job.run_id).state == "done"


@pytest.mark.parametrize("run_id", ["20250101-000000-nothing", "../x"])
def test_get_of_unknown_run_raises(registry: JobRegistry, run_id: str) -> None:
    with pytest.raises(StudioError):
        registry.get(run_id)


def test_default_command_is_engine_retrain_with_the_run_dir(tmp_path: Path) -> None:
    # a stand-in interpreter that records how it was called, then plays a trainer that finished
    python = tmp_path / "python"
    python.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, os, sys
            from engine.core.rundir import RunDir
            run_dir = sys.argv[sys.argv.index("--run_dir") + 1]
            with open(os.path.join(run_dir, "argv.json"), "w") as f:
                json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd(),
                            "pythonpath": os.environ.get("PYTHONPATH"),
                            "request": RunDir(run_dir).read_request()}}, f)
            RunDir(run_dir).write_status("done")
            """
        )
    )
    python.chmod(0o755)
    config = TrainConfig(image_dir="photos", how_many_training_steps=7)
    job = JobRegistry(runs_dir=tmp_path / "runs", python=str(python)).start(config)
    assert job.wait(timeout=60) == "done"
    seen = json.loads((job.run_dir.path / "argv.json").read_text())
    # the settings travel in request.json, written before the process starts, not as flags
    assert seen["argv"] == ["-m", "engine", "retrain", "--run_dir", str(job.run_dir.path)]
    assert seen["request"] == config.as_dict()
    # the process runs in its run folder; the engine is installed, so PYTHONPATH is left alone
    assert seen["cwd"] == str(job.run_dir.path)
    assert seen["pythonpath"] == os.environ.get("PYTHONPATH")


def test_start_writes_the_request_and_a_queued_status_naming_backbone_and_job(tmp_path: Path) -> None:
    # a job process that never reports: what start wrote stays as it wrote it
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    registry = JobRegistry(runs_dir=tmp_path / "runs", command=silent)
    config = TrainConfig(architecture="mobilenet_v2", how_many_training_steps=2, seed=9)
    job = registry.start(config)
    try:
        assert job.run_id.endswith("-mobilenet_v2")
        assert job.run_dir.read_request() == config.as_dict()
        assert TrainConfig.from_dict(job.run_dir.read_request()) == config
        status = job.run_dir.read_status()
        assert (status["state"], status["architecture"], status["job"]) == (
            "queued",
            "mobilenet_v2",
            "retrain",
        )
        assert (status["pid"], status["pid_start"]) == (job.pid, job.pid_start)
        assert job.running
    finally:
        job.cancel(grace_s=0, terminate_grace_s=10, block=True)
    assert job.state == "cancelled"


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(how_many_training_steps=0),
        TrainConfig(lr_schedule="zigzag"),
        TrainConfig(validation_percentage=50, testing_percentage=50),
        TrainConfig(architecture="no_such_net"),
    ],
    ids=["steps", "schedule", "percentages", "architecture"],
)
def test_start_refuses_a_bad_config_and_creates_no_run_folder(
    registry: JobRegistry, config: TrainConfig
) -> None:
    with pytest.raises(StudioError, match="no_such_net|is not allowed"):
        registry.start(config)
    assert list(iter_run_dirs(registry.runs_dir)) == []
    assert registry.active() is None


def test_unlaunchable_command_raises_and_leaves_no_active_job(tmp_path: Path) -> None:
    registry = JobRegistry(runs_dir=tmp_path / "runs", python=str(tmp_path / "no-such-python"))
    with pytest.raises(StudioError, match="could not start the training"):
        registry.start(TrainConfig())
    assert registry.active() is None
    [run] = iter_run_dirs(registry.runs_dir)
    assert run.read_status()["state"] == "failed"


def test_wait_with_timeout_returns_the_current_state(registry: JobRegistry) -> None:
    job = registry.start(LONG)
    wait_for(lambda: job.state == "running", timeout=60)
    assert job.wait(timeout=0.2) == "running"
    job.cancel(grace_s=30, block=True)


def test_two_threads_starting_at_once_start_one_job(registry: JobRegistry) -> None:
    import threading

    outcomes: list[object] = []

    def start() -> None:
        try:
            outcomes.append(registry.start(LONG))
        except StudioError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    started = [o for o in outcomes if isinstance(o, TrainingJob)]
    assert len(started) == 1 and len(outcomes) == 2
    started[0].cancel(grace_s=30, block=True)


# --------------------------------------------------------------------------- the real trainer


@pytest.fixture
def tiny_photos(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "photos", {"a": 6, "b": 6, "c": 6})


def _real_request(photos: Path, steps: int) -> TrainConfig:
    # random backbone weights: the job plumbing is under test, not the accuracy
    return TrainConfig(
        image_dir=str(photos), architecture="efficientnet_lite0", how_many_training_steps=steps,
        eval_step_interval=2, weights=None, head_fit="sgd",
    )  # fmt: skip


@pytest.mark.slow
def test_real_trainer_runs_through_the_registry_to_done(studio_home: Path, tiny_photos: Path) -> None:
    registry = JobRegistry(runs_dir=studio_home / "runs")
    job = registry.start(_real_request(tiny_photos, 6))
    assert job.wait(timeout=600) == "done", job.run_dir.log_path.read_text()[-2000:]
    events = job.run_dir.read_events()[0]
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert any(e["event"] == "result" for e in events)
    assert job.run_dir.read_labels() == ["a", "b", "c"]
    assert "Final test accuracy" in job.run_dir.log_path.read_text()
    # the trainer took its settings from request.json
    config = job.run_dir.read_config()
    assert (config["how_many_training_steps"], config["weights"]) == (6, None)
    assert registry.active() is None


@pytest.mark.slow
def test_real_trainer_cancelled_mid_run_ends_cancelled(studio_home: Path, tiny_photos: Path) -> None:
    registry = JobRegistry(runs_dir=studio_home / "runs")
    job = registry.start(_real_request(tiny_photos, 1_000_000))
    wait_for(lambda: len(_steps(job.run_dir)) >= 2 or not job.running, timeout=600)
    assert job.running, job.run_dir.log_path.read_text()[-2000:]
    job.cancel(grace_s=60, block=True)
    assert job.state == "cancelled"
    assert job._process is not None and job._process.returncode == 3  # the trainer stopped itself
    assert 2 <= len(_steps(job.run_dir)) < 1_000_000
    assert registry.active() is None
