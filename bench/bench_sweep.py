"""The sweep's cost on the demo: EfficientNet-Lite0 (4 sizes), Lite1 and Lite2, with a cold and a warm cache.

Runs `python -m engine sweep` twice on the generated demo dataset (300 photos,
5 classes) with a fresh studio cache: the first run converts each backbone to
LiteRT (and checks it) and computes every feature (cold), the second finds
both cached (warm). For each run: the wall time, and per candidate where the
time went (backbone load or conversion, features, the L-BFGS head, the float
and int8 exports with their scoring), from leaderboard.json.

    python bench/bench_sweep.py [--architectures efficientnet_lite0,efficientnet_lite1,efficientnet_lite2] [--sizes all]

Everything goes under a fresh temporary folder (removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LITE = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"


def _sweep(home: Path, out: Path, args: argparse.Namespace, seed: int = 1) -> tuple[float, dict]:
    env = {**os.environ, "RETRAIN_STUDIO_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("RETRAIN_STUDIO_CACHE", None)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "engine", "sweep", "--architectures", args.architectures,
         "--sizes", args.sizes, "--seed", str(seed), "--output_dir", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, json.loads((out / "leaderboard.json").read_text())


def _or_dash(value: float | None, scale: float, spec: str) -> str:
    """A figure scaled and formatted, or "-" for one not measured (int8: only for a full run)."""
    return format(value * scale, spec) if value is not None else format("-", ">6")


def _report(label: str, seconds: float, board: dict) -> None:
    print(f"\n== {label}: {seconds:.0f} s wall for {len(board['rows'])} candidates (load average "
          f"{os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"{'candidate':<24} {'acc':>6} {'F1':>6} {'MB':>6} {'int8MB':>6} {'ms':>6} {'int8':>6} "
          f"{'load':>6} {'feat':>6} {'fit':>5} {'export':>7} {'total':>6}  features")  # fmt: skip
    for row in sorted(board["rows"], key=lambda r: r["candidate"]):
        d = row["details"]
        s = d.get("seconds", {})
        print(
            f"{row['candidate']:<24} {row['test_accuracy']:>6.1%} {row['macro_f1']:>6.3f} "
            f"{row['size_bytes'] / 1e6:>6.2f} {_or_dash(row['int8_size_bytes'], 1e-6, '6.2f')} "
            f"{row['latency_ms']:>6.1f} {_or_dash(row['int8_accuracy_change'], 100, '+6.1f')} "
            f"{s.get('load', 0):>6.1f} {s.get('features', 0):>6.1f} "
            f"{s.get('fit', 0):>5.1f} {s.get('export', 0):>7.1f} {row['seconds']:>6.1f}  "
            f"{d.get('features_computed')} computed / {d.get('features_cached')} cached"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", default=LITE)
    parser.add_argument("--sizes", choices=("all", "default"), default="all")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retrain-studio-bench-sweep-"))
    try:
        home = work / "home"
        cold_s, cold = _sweep(home, work / "cold", args)
        warm_s, warm = _sweep(home, work / "warm", args)
        _report("cold cache (conversions and features computed)", cold_s, cold)
        _report("warm cache (both cached)", warm_s, warm)
        print(f"\ncold / warm wall time: {cold_s / warm_s:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
