"""What transfer learning buys: small_cnn trained from scratch beside EfficientNet-Lite0, on the demo.

Runs `python -m engine sweep --architectures efficientnet_lite0,small_cnn
--sizes default` on the generated demo dataset (300 photos, 5 classes) once
per seed, in one fresh studio home (so Lite0's conversion and features are
cold on the first seed only). Prints, per seed and candidate: test accuracy,
macro-F1, float TFLite size, LiteRT latency per photo, and the candidate's
time (for small_cnn: its training, `SCRATCH_RECIPE` epochs, and export; for
Lite0: load, features, the L-BFGS head and export); then small_cnn's mean and
range over the seeds (the demo's test split is 32 photos: one photo is 3
points).

    python bench/bench_scratch.py [--seeds 1,2,3] [--architectures efficientnet_lite0,small_cnn]

Everything goes under a fresh temporary folder (removed at the end).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sweep import _sweep  # the same sweep command, one seed per call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--architectures", default="efficientnet_lite0,small_cnn")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scratch-"))
    scratch: list[dict] = []
    try:
        for seed in (int(s) for s in args.seeds.split(",")):
            sweep_args = argparse.Namespace(architectures=args.architectures, sizes="default")
            seconds, board = _sweep(work / "home", work / f"sweep-{seed}", sweep_args, seed)
            print(f"\n== seed {seed}: {seconds:.0f} s wall (load average {os.getloadavg()[0]:.1f})")
            print(f"{'candidate':<24} {'kind':<18} {'acc':>6} {'F1':>6} {'MB':>6} {'ms':>6}  seconds")
            for row in board["rows"]:
                times = ", ".join(f"{k} {v:.1f}" for k, v in row["details"].get("seconds", {}).items())
                print(
                    f"{row['candidate']:<24} {row['kind']:<18} {row['test_accuracy']:>6.1%} "
                    f"{row['macro_f1']:>6.3f} {row['size_bytes'] / 1e6:>6.2f} {row['latency_ms']:>6.2f}  "
                    f"{row['seconds']:.1f} ({times})"
                )
                if row["kind"] == "from scratch":
                    scratch.append(row)
        if scratch:
            accuracies = [row["test_accuracy"] for row in scratch]
            seconds = [row["seconds"] for row in scratch]
            print(
                f"\nsmall_cnn over {len(scratch)} seeds: test accuracy mean {sum(accuracies) / len(accuracies):.1%} "
                f"(range {min(accuracies):.1%}-{max(accuracies):.1%}), time {min(seconds):.0f}-{max(seconds):.0f} s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
