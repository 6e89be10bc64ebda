"""Feature extraction speed of the default backbone, TensorFlow and LiteRT, model only.

Prints images/s at batch 32 and single-image latency (p50/p95, warm) for
each runtime, in the same process on the same random 224x224 inputs, plus
the load time (from cache) and the system load average.

    python bench/bench_backbone.py [--backbone efficientnet_lite0] [--repeats 10]

Goals (issue 2): >= 100 images/s at batch 32 and <= 25 ms per single image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from engine.models.loading import load_feature_runtime
from engine.models.registry import DEFAULT_BACKBONE
from engine.models.runtime import FeatureRuntime

BATCH = 32


def _measure(loaded: FeatureRuntime, repeats: int) -> tuple[float, float, float]:
    size = loaded.input_size
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (BATCH, size, size, 3), dtype=np.uint8)
    one = batch[:1]
    loaded.features(batch)  # warm-up: kernels and buffers for both shapes
    loaded.features(one)
    start = time.perf_counter()
    for _ in range(repeats):
        loaded.features(batch)
    images_per_s = BATCH * repeats / (time.perf_counter() - start)
    latencies = []
    for _ in range(repeats * 5):
        t = time.perf_counter()
        loaded.features(one)
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return images_per_s, statistics.median(latencies) * 1000, p95 * 1000


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(
        f"backbone {args.backbone}, batch {BATCH}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    for prefer in ("tensorflow", "litert"):
        start = time.perf_counter()
        loaded = load_feature_runtime(args.backbone, prefer=prefer)
        load_s = time.perf_counter() - start
        rate, p50, p95 = _measure(loaded, args.repeats)
        print(
            f"{loaded.runtime:<10} load {load_s:5.1f} s | batch {BATCH}: {rate:6.1f} images/s | "
            f"1 image: p50 {p50:5.1f} ms, p95 {p95:5.1f} ms"
            + (f" | {loaded.notice}" if loaded.notice else "")
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
