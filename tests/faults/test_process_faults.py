"""Faults of the training process itself: a SIGKILL in each phase, a full disk, two trainings at once.

Real trainings (`python -m engine retrain` in child processes) on the tiny
dataset of the session's shared run, whose test accuracy is the reference: a
run that met a fault, or the run after it, must end exactly as the clean run
did. "A random moment" is picked from the run's own events (a phase starting,
a step number drawn from a fixed seed), polled, never slept for.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core import heal
from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.runs.jobs import DIED_MESSAGE, JobRegistry, TrainingJob
from engine.runs.listing import iter_run_dirs
from engine.serve.inference import Predictor
from engine.serve.model_files import read_labels_file
from engine.train.cache import BottleneckCache
from engine.train.follow_up import export_state
from tests.support.cli import REPO_ROOT
from tests.support.tiny_model import STEPS, TinyRun, tiny_config
from tests.support.waiting import wait_for

JOB_DEADLINE_S = 600
SEED = 1010


def _events(run: RunDir) -> list[dict]:
    return run.read_events()[0]


def _in_phase(run: RunDir, phase: str) -> bool:
    return any(e["event"] == "phase" and e["phase"] == phase for e in _events(run))


def _at_step(run: RunDir, step: int) -> bool:
    return any(e["event"] == "step" and e["step"] >= step for e in _events(run))


def _kill(job: TrainingJob) -> None:
    assert job.pid is not None
    os.killpg(job.pid, signal.SIGKILL)  # the trainer leads its own process group
    wait_for(lambda: not job.process_alive(), timeout=60, what="the killed trainer to be gone")


@pytest.fixture
def jobs(tmp_path: Path):
    """A job registry on a fresh runs folder; no trainer outlives the test."""
    registry = JobRegistry(runs_dir=tmp_path / "runs")
    yield registry
    for run in iter_run_dirs(registry.runs_dir):
        pid = run.read_status().get("pid")
        if isinstance(pid, int) and run.read_status().get("state") in ("queued", "running"):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.mark.slow
def test_sigkill_in_each_phase_fails_the_run_keeps_its_logs_and_the_rerun_ends_as_the_clean_run(
    tiny_run: TinyRun, jobs: JobRegistry, tmp_path: Path
) -> None:
    kill_at_step = random.Random(SEED).randint(1, STEPS)
    config = tiny_config(tiny_run.data_dir, tmp_path / "bottlenecks")  # a cold cache
    moments = {
        "bottlenecks": lambda run: _in_phase(run, "bottlenecks"),
        "train": lambda run: _at_step(run, kill_at_step),
        "export": lambda run: _in_phase(run, "export"),
    }
    for phase, reached in moments.items():
        job = jobs.start(config)
        if phase == "bottlenecks":  # meanwhile a second training is refused, naming the first
            for registry in (jobs, JobRegistry(runs_dir=jobs.runs_dir)):
                with pytest.raises(StudioError, match=job.run_id):
                    registry.start(config)
        wait_for(
            lambda job=job, reached=reached: reached(job.run_dir), timeout=JOB_DEADLINE_S, what=phase
        )
        _kill(job)
        # A registry that never knew the job finds it dead and marks it failed, logs kept.
        assert JobRegistry(runs_dir=jobs.runs_dir).active() is None
        status = job.run_dir.read_status()
        assert "Run folder:" in job.run_dir.log_path.read_text(), phase
        assert _in_phase(job.run_dir, phase)
        if phase == "export":
            # the exports follow a done run: it stays done and usable, its exports failed
            assert status["state"] == "done", status
            assert Predictor.from_run(job.run_dir.path).labels == read_labels_file(
                tiny_run.run.labels_path
            )
            assert export_state(job.run_dir)["state"] == "failed"
            continue
        assert (status["state"], status["error"]) == ("failed", DIED_MESSAGE), phase

    rerun = jobs.start(config)
    assert rerun.wait(JOB_DEADLINE_S) == "done", rerun.run_dir.log_path.read_text()[-3000:]
    status = rerun.run_dir.read_status()
    assert status["bottlenecks"]["cached"] == 24 and status["bottlenecks"]["computed"] == 0
    assert status["test_accuracy"] == tiny_run.report["accuracy"]
    assert not list((tmp_path / "bottlenecks").glob(f"*{heal.DAMAGED_MARK}*"))


# `python -m engine ARGS` with a file size limit set first (a full disk, for this process only).
_LIMITED_ENGINE = (
    "import resource, runpy, sys\n"
    "limit = int(sys.argv.pop(1))\n"
    "if limit:\n"
    "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "sys.argv[0] = 'engine'\n"
    "runpy.run_module('engine', run_name='__main__', alter_sys=True)\n"
)


def _retrain_child(args: list[str], *, limit: int = 0, home: Path) -> subprocess.Popen:
    env = dict(os.environ, RETRAIN_STUDIO_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-c", _LIMITED_ENGINE, str(limit), "retrain", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _flags(tiny_run: TinyRun, bottlenecks: Path, runs: Path) -> list[str]:
    config = tiny_run.config
    return [
        "--image_dir", str(tiny_run.data_dir), "--architecture", config.architecture,
        "--image_size", str(config.image_size), "--how_many_training_steps", str(config.how_many_training_steps),
        "--eval_step_interval", str(config.eval_step_interval), "--train_batch_size", str(config.train_batch_size),
        "--validation_batch_size", "-1", "--testing_percentage", str(config.testing_percentage),
        "--validation_percentage", str(config.validation_percentage), "--seed", str(config.seed),
        "--bottleneck_dir", str(bottlenecks), "--runs_dir", str(runs),
    ]  # fmt: skip


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_leaving_no_half_file_and_earlier_models_intact(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    bottlenecks = shutil.copytree(tiny_run.bottleneck_dir, tmp_path / "bottlenecks")
    earlier = {p: p.read_bytes() for p in (tiny_run.run.model_path, tiny_run.run.tflite_path)}
    # Room for the caches, the logs and the events, not for the 14 MB model.
    child = _retrain_child(
        _flags(tiny_run, bottlenecks, tmp_path / "runs"), limit=4 << 20, home=tmp_path
    )
    _out, err = child.communicate(timeout=JOB_DEADLINE_S)
    assert child.returncode == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the disk is full or a file size limit was reached"), last
    [run] = [RunDir(p) for p in (tmp_path / "runs").iterdir()]
    status = run.read_status()
    assert status["state"] == "failed" and status["error"] == last.removeprefix("error: ")
    # No half-written file: no model, no temporary leftovers, only whole event lines.
    assert not run.model_path.exists()
    assert not [p.name for p in run.path.iterdir() if p.name.startswith(".")]
    assert run.events_path.read_bytes().endswith(b"\n")
    assert [e["phase"] for e in _events(run) if e["event"] == "phase"][-1] == "failed"
    # What was there before is intact: the earlier run's models, the bottleneck cache.
    assert {p: p.read_bytes() for p in earlier} == earlier
    cache = BottleneckCache(next(bottlenecks.glob("*.sqlite")), 1280)
    assert len(cache) == 24
    assert not list(bottlenecks.glob(f"*{heal.DAMAGED_MARK}*"))


@pytest.mark.slow
def test_a_full_disk_during_an_export_keeps_the_previous_model(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    copy = RunDir(shutil.copytree(tiny_run.run.path, tmp_path / tiny_run.run.run_id))
    previous = copy.tflite_path.read_bytes()
    code = (
        "import resource, sys\n"
        "from engine.core.rundir import RunDir\n"
        "from engine.serve.export import export_run\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "results = export_run(RunDir(sys.argv[1]), formats=('tflite_int8',))\n"
        "print('error:', results['tflite_int8']['error'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(copy.path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=JOB_DEADLINE_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        proc.stdout.strip()
        .splitlines()[-1]
        .startswith("error: the disk is full or a file size limit was reached")
    )
    assert copy.tflite_path.read_bytes() == previous
    assert sorted(p.name for p in copy.export_dir.iterdir()) == sorted(
        p.name for p in tiny_run.run.export_dir.iterdir()
    )


@pytest.mark.slow
def test_two_cli_trainings_at_once_on_one_cache_both_finish_with_correct_features(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    bottlenecks = tmp_path / "bottlenecks"  # cold: both compute and write the same features
    children = [
        _retrain_child(_flags(tiny_run, bottlenecks, tmp_path / f"runs{n}"), home=tmp_path / f"home{n}")
        for n in range(2)
    ]
    outputs = [child.communicate(timeout=JOB_DEADLINE_S) for child in children]
    assert [c.returncode for c in children] == [0, 0], [err[-2000:] for _, err in outputs]
    for n in range(2):
        [run] = [RunDir(p) for p in (tmp_path / f"runs{n}").iterdir()]
        assert run.read_status()["test_accuracy"] == tiny_run.report["accuracy"]
    [database] = bottlenecks.glob("*.sqlite")
    [reference] = tiny_run.bottleneck_dir.glob("*.sqlite")
    hashes = [r.sha256 for r in _records(tiny_run)]
    shared, damaged = BottleneckCache(database, 1280).get_many(hashes)
    clean, _ = BottleneckCache(reference, 1280).get_many(hashes)
    assert damaged == 0 and sorted(shared) == sorted(clean) and len(clean) == 24
    for sha, vector in clean.items():
        assert (shared[sha] == vector).all(), sha


def _records(tiny_run: TinyRun) -> list:
    from engine.data.scan import scan_dataset

    return list(scan_dataset(tiny_run.data_dir).images)
