"""Seconds, not minutes (issue 18): warm retrain and warm sweep beside TensorFlow's import, in one run.

On the generated demo dataset (300 photos, 5 classes) in a fresh studio home,
after one warming retrain and one warming sweep (backbones converted to
LiteRT, every feature cached), rounds alternate, each in a fresh process:

1. `python -c "import tensorflow"`: the yardstick.
2. `python -m engine retrain --image_dir DEMO` with its defaults: seconds from
   process start to the `Final test accuracy` line on stdout (the model is
   usable then), and to the process's end (its follow-up in the same process
   after the line: model.keras built, the float TFLite scored).
3. `python -m engine sweep --architectures Lite0,Lite1,Lite2 --sizes default`:
   the whole process (the sweep scores, it exports nothing).

Then once: `python -m engine retrain --architecture small_cnn` with no step or
epoch flag (the Train page's recipe), wall time and the recipe line it prints.

    python bench/bench_seconds.py [--rounds 3] [--skip_small_cnn]

Targets: retrain-to-Final / import tensorflow < 1.0; sweep / import tensorflow
< 3.0; small_cnn in minutes. Everything goes under a fresh temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LITE = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"
FINAL = "Final test accuracy"


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "RETRAIN_STUDIO_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("RETRAIN_STUDIO_CACHE", None)
    env.pop("RETRAIN_STUDIO_RUNS", None)
    return env


def _timed(
    argv: list[str], env: dict[str, str], *, until: str | None = None
) -> tuple[float, float, str]:
    """Run `argv`; seconds to the first stdout line starting with `until` (or the end), to the end."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen_at = None
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if until and seen_at is None and line.startswith(until):
            seen_at = time.perf_counter() - start
    _, err = process.communicate()
    total = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed ({process.returncode}):\n{err[-3000:]}")
    return (seen_at if seen_at is not None else total), total, "".join(lines) + err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip_small_cnn", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="retrain-studio-bench-seconds-"))
    try:
        home = work / "home"
        env = _env(home)
        python = sys.executable
        subprocess.run([python, "-m", "engine", "demo-data"], cwd=REPO, env=env, check=True,
                       capture_output=True)  # fmt: skip
        demo = home / "datasets" / "demo"
        retrain = [python, "-m", "engine", "retrain", "--image_dir", str(demo)]
        sweep = [python, "-m", "engine", "sweep", "--image_dir", str(demo), "--architectures", LITE,
                 "--sizes", "default"]  # fmt: skip
        import_tf = [python, "-c", "import tensorflow"]
        warm_retrain = _timed(retrain, env, until=FINAL)
        warm_sweep = _timed([*sweep, "--output_dir", str(work / "sweep-cold")], env)
        print(f"warming: retrain {warm_retrain[1]:.1f} s, sweep {warm_sweep[1]:.1f} s (cold caches)")
        figures: dict[str, list[float]] = {"tf": [], "final": [], "retrain_end": [], "sweep": []}
        for number in range(args.rounds):
            figures["tf"].append(_timed(import_tf, env)[1])
            final, end, _ = _timed(retrain, env, until=FINAL)
            figures["final"].append(final)
            figures["retrain_end"].append(end)
            figures["sweep"].append(
                _timed([*sweep, "--output_dir", str(work / f"sweep-{number}")], env)[1]
            )
            print(
                f"round {number + 1}: import tensorflow {figures['tf'][-1]:.2f} s · retrain to Final "
                f"{final:.2f} s (process end {end:.2f} s) · sweep {figures['sweep'][-1]:.2f} s"
            )
        median = {name: statistics.median(values) for name, values in figures.items()}
        print(f"\nmedians of {args.rounds} rounds (load average {os.getloadavg()[0]:.1f}):")
        print(f"  import tensorflow               {median['tf']:6.2f} s")
        print(f"  warm retrain, start to Final    {median['final']:6.2f} s  "
              f"ratio {median['final'] / median['tf']:.2f} (target < 1.0)")  # fmt: skip
        print(f"  warm retrain, start to its end  {median['retrain_end']:6.2f} s  "
              f"(with the follow-up: model.keras, the float TFLite scored)")  # fmt: skip
        print(f"  warm sweep Lite0/1/2 (default)  {median['sweep']:6.2f} s  "
              f"ratio {median['sweep'] / median['tf']:.2f} (target < 3.0)")  # fmt: skip
        if not args.skip_small_cnn:
            _, seconds, output = _timed([*retrain, "--architecture", "small_cnn"], env, until=FINAL)
            recipe = next((line for line in output.splitlines() if "recipe" in line), "(no recipe line)")
            final = next((line for line in output.splitlines() if line.startswith(FINAL)), "")
            print(f"  small_cnn, no step flag         {seconds:6.1f} s  {final}")
            print(f"    it said: {recipe.strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
