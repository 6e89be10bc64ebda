"""Retraining speed: cold vs warm bottlenecks, and a warm-cache retrain of N steps.

On the generated demo dataset (300 JPEGs, 240-500 px, 5 classes), with the
default backbone at its default size, in one process:

1. bottlenecks with an empty cache (decode + prepare in a thread pool, the
   feature runtime in batches of 32), then again with the cache warm;
2. a full `retrain` of `--steps` steps (default 500) on the warm cache, with
   step events, TensorBoard summaries and the test evaluation: its total wall
   time and the step loop alone.

    python bench/bench_retrain.py [--steps 500] [--runtime litert|tensorflow]

Everything is written under a fresh temporary folder (removed at the end).
Goals (issue 4): a warm rerun computes nothing; the step loop "takes
seconds, not minutes" for retrain.py's 4,000 steps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--runtime", choices=("litert", "tensorflow"), default="litert")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="retrain-studio-bench-retrain-"))
    os.environ["RETRAIN_STUDIO_HOME"] = str(work / "home")
    try:
        from engine.core.rundir import RunDir
        from engine.data.demo import ensure_demo_dataset
        from engine.data.scan import scan_dataset
        from engine.models.loading import load_feature_runtime
        from engine.models.registry import DEFAULT_BACKBONE
        from engine.train.bottlenecks import extract_bottlenecks
        from engine.train.cache import BottleneckCache
        from engine.train.config import TrainConfig
        from engine.train.retrain import retrain

        root = ensure_demo_dataset(work / "demo")
        dataset = scan_dataset(root)
        records = list(dataset.images)
        loaded_at = time.perf_counter()
        runtime = load_feature_runtime(DEFAULT_BACKBONE, prefer=args.runtime)
        load_s = time.perf_counter() - loaded_at
        cache_dir = work / "bottlenecks"
        cache = BottleneckCache.for_runtime(runtime, cache_dir)

        print(f"backbone {runtime.backbone.name} @ {runtime.input_size}px, runtime {runtime.runtime}")
        print(
            f"images: {len(records)}; runtime load {load_s:.1f} s; load average {os.getloadavg()[0]:.1f}"
        )
        cold = extract_bottlenecks(records, runtime, cache=cache)
        warm = extract_bottlenecks(records, runtime, cache=cache)
        print(
            f"bottlenecks cold: {cold.seconds:.2f} s ({len(records) / cold.seconds:.0f} images/s, "
            f"{cold.computed} computed)"
        )
        print(
            f"bottlenecks warm: {warm.seconds:.3f} s ({warm.cached} cached, {warm.computed} computed); "
            f"cold/warm = {cold.seconds / warm.seconds:.0f}x"
        )

        run = RunDir.create(work / "runs", backbone=runtime.backbone.name)
        config = TrainConfig(
            image_dir=str(root),
            how_many_training_steps=args.steps,
            bottleneck_dir=str(cache_dir),
            runtime=args.runtime,
            seed=1,
        )
        start = time.perf_counter()
        report = retrain(config, run)
        total = time.perf_counter() - start
        loop = report["train_seconds"]
        print(
            f"retrain {args.steps} steps, warm cache: {total:.1f} s total, step loop {loop:.2f} s "
            f"({args.steps / loop:.0f} steps/s, {loop / args.steps * 1000:.2f} ms/step); "
            f"test accuracy {report['accuracy'] * 100:.1f}% (N={report['count']})"
        )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
