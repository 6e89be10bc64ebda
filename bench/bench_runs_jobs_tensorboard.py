"""What the dashboard's once-a-second polls cost, and how long TensorBoard takes to come up.

Goals (the Train and TensorBoard pages poll every second on a 2-core machine):
- following a run (`RunDir.read_events(offset)` with one new event): < 1 ms;
- `list_runs` over 100 runs of 4,000 steps each: < 100 ms;
- `read_scalars` re-poll of a 4,000-step run after one more step: < 20 ms
  (the cold first read is reported too);
- `start_tensorboard`: a fresh start reported; a reuse < 100 ms.

Everything is made in a temporary folder; nothing needs TensorFlow.

Run from the repository root:  python bench/bench_runs_jobs_tensorboard.py [--skip-tensorboard]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = 4000
RUNS = 100


def _timed(fn: Callable[[], object], repeat: int = 20) -> float:
    """Median seconds of `fn` over `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _step_event(step: int) -> dict[str, object]:
    return {
        "event": "step",
        "step": step,
        "total_steps": STEPS,
        "train_accuracy": 0.9,
        "cross_entropy": 0.3,
        "learning_rate": 0.01,
        "images_per_s": 800.0,
        "elapsed_s": step * 0.01,
        "validation_accuracy": 0.88,
        "validation_cross_entropy": 0.35,
    }


def _make_run(root: Path):
    from engine.core.rundir import RunDir

    run = RunDir.create(root, backbone="efficientnet_lite0")
    run.write_config({"architecture": "efficientnet_lite0", "image_dir": "/photos"})
    run.write_status("running")
    lines = [
        f"{__import__('json').dumps({**_step_event(s), 'time': 1.0})}\n" for s in range(1, STEPS + 1)
    ]
    run.events_path.write_text("".join(lines))
    run.write_status("done", test_accuracy=0.9)
    return run


def bench_events_and_listing(root: Path) -> None:
    from engine.runs.listing import list_runs

    run = _make_run(root)
    size_kb = run.events_path.stat().st_size / 1024
    full = _timed(lambda: run.read_events(0), repeat=5)
    _, offset = run.read_events(0)

    def poll_one_new() -> None:
        run.append_event(_step_event(STEPS + 1))
        run.read_events(offset)

    poll = _timed(poll_one_new, repeat=200)
    print(f"read_events from 0, {STEPS} step events ({size_kb:.0f} KiB): {full * 1000:.1f} ms")
    print(f"append_event + read_events(offset) of 1 new event: {poll * 1000:.3f} ms   (goal < 1 ms)")

    for _ in range(RUNS - 1):
        _make_run(root)
    listing = _timed(lambda: list_runs(root), repeat=5)
    print(f"list_runs over {RUNS} runs of {STEPS} steps: {listing * 1000:.1f} ms   (goal < 100 ms)")


def bench_scalars(root: Path) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from engine.runs.event_files import read_scalars

    writers = {name: EventFileWriter(str(root / name)) for name in ("train", "validation")}
    for step in range(STEPS):
        for writer in writers.values():
            for tag in ("accuracy", "cross_entropy", "learning_rate"):
                writer.add_event(
                    event_pb2.Event(step=step, wall_time=time.time(), summary=scalar_pb(tag, 0.5))
                )
    for writer in writers.values():
        writer.flush()
    start = time.perf_counter()
    frame = read_scalars(root)
    cold = time.perf_counter() - start
    unchanged = _timed(lambda: read_scalars(root), repeat=10)

    step = [STEPS]

    def one_more_step() -> None:
        step[0] += 1
        writers["train"].add_event(
            event_pb2.Event(step=step[0], wall_time=time.time(), summary=scalar_pb("accuracy", 0.5))
        )
        writers["train"].flush()
        read_scalars(root)

    grown = _timed(one_more_step, repeat=10)
    print(f"read_scalars cold, {len(frame)} points in 2 runs: {cold * 1000:.0f} ms")
    print(f"read_scalars again, nothing new: {unchanged * 1000:.1f} ms")
    print(f"read_scalars after 1 more step: {grown * 1000:.1f} ms   (goal < 20 ms)")
    for writer in writers.values():
        writer.close()


def bench_tensorboard(root: Path) -> None:
    from engine.runs.tensorboard import start_tensorboard

    os.environ["RETRAIN_STUDIO_HOME"] = str(root / "home")
    start = time.perf_counter()
    board = start_tensorboard(root)
    fresh = time.perf_counter() - start
    try:
        reuse = _timed(lambda: start_tensorboard(root), repeat=5)
    finally:
        board.stop()
    print(f"start_tensorboard fresh (until it answers HTTP): {fresh:.1f} s")
    print(f"start_tensorboard reuse: {reuse * 1000:.1f} ms   (goal < 100 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tensorboard", action="store_true", help="skip the server start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_events_and_listing(Path(tmp) / "runs")
        bench_scalars(Path(tmp) / "tb")
        if not args.skip_tensorboard:
            bench_tensorboard(Path(tmp) / "tb")


if __name__ == "__main__":
    main()
