"""Many classes: peak memory and time of a training on 1,000 classes (issue 10, item 4).

Generates a dataset of `--classes` classes x `--per_class` small JPEGs (each
class its own colour and stripe pattern; a few seconds to write), then runs
`python -m engine retrain` on it as a user would, in a child process, and
samples the child's resident memory (/proc/PID/status VmRSS) every 0.1 s,
attributed to the phase `events.jsonl` says it is in. Prints the peak RSS per
phase, the overall peak (the kernel's own high-water mark, ru_maxrss), the
wall time, the test accuracy and whether report.json was written.

    python bench/bench_many_classes.py [--classes 1000] [--per_class 6] [--steps 50]

Goal: a 1,000-class, 6,000-photo training at 50 steps stays under ~2.5 GB
peak RSS and writes its report. Everything is written under a fresh temporary
folder (removed at the end unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def write_dataset(root: Path, classes: int, per_class: int, side: int) -> int:
    """`classes` folders of `per_class` JPEGs of `side` px; returns the number of files."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class_{c:04d}"
        folder.mkdir(parents=True)
        colour = rng.integers(30, 226, size=3)
        period = 2 + c % 7
        for i in range(per_class):
            pixels = np.empty((side, side, 3), np.float32)
            pixels[:] = colour
            stripes = ((np.arange(side) + i) // period) % 2 == 0
            pixels[:, stripes] *= 0.5 + 0.4 * ((c // 7) % 5) / 4
            pixels += rng.normal(0, 8, size=pixels.shape)
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
            image.save(folder / f"{i:02d}.jpg", quality=90)
    return classes * per_class


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _phase(events: Path, offset: int, current: str) -> tuple[str, int]:
    try:
        with open(events, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except OSError:
        return current, offset
    end = chunk.rfind(b"\n") + 1
    for line in chunk[:end].splitlines():
        event = json.loads(line)
        if event.get("event") == "phase":
            current = event["phase"]
    return current, offset + end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per_class", type=int, default=6)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--side", type=int, default=48, help="photo side in pixels")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("retrain_flags", nargs="*", help="more `retrain` flags, after --")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="retrain-studio-bench-classes-"))
    try:
        started = time.perf_counter()
        count = write_dataset(work / "data", args.classes, args.per_class, args.side)
        print(
            f"dataset: {args.classes} classes x {args.per_class} = {count} JPEGs of {args.side} px, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        env = dict(os.environ, RETRAIN_STUDIO_HOME=str(work / "home"), TF_CPP_MIN_LOG_LEVEL="2")
        if "RETRAIN_STUDIO_CACHE" in os.environ:  # reuse converted backbones, not bottlenecks
            env["RETRAIN_STUDIO_CACHE"] = os.environ["RETRAIN_STUDIO_CACHE"]
        command = [
            sys.executable, "-m", "engine", "retrain",
            "--image_dir", str(work / "data"),
            "--how_many_training_steps", str(args.steps),
            "--runs_dir", str(work / "runs"),
            "--bottleneck_dir", str(work / "bottlenecks"),
            *args.retrain_flags,
        ]  # fmt: skip
        log = open(work / "retrain.log", "w")  # noqa: SIM115 - closed below
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        peaks: dict[str, int] = {}
        phase, offset, events = "start", 0, None
        while child.poll() is None:
            if events is None:
                found = list((work / "runs").glob("*/events.jsonl"))
                events = found[0] if found else None
            if events is not None:
                phase, offset = _phase(events, offset, phase)
            peaks[phase] = max(peaks.get(phase, 0), _rss_bytes(child.pid))
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        log.close()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        tail = (work / "retrain.log").read_text().strip().splitlines()[-3:]
        runs = list((work / "runs").glob("*/report.json"))
        print(f"retrain exit code {child.returncode} after {seconds:.1f} s; last lines:")
        for line in tail:
            print(f"    {line[:200]}")
        print("peak RSS by phase (sampled every 0.1 s):")
        for name, value in peaks.items():
            print(f"    {name:<12} {value / 2**30:6.2f} GiB")
        print(f"peak RSS (ru_maxrss): {peak / 2**30:.2f} GiB; goal < 2.5 GB")
        if runs:
            report = json.loads(runs[0].read_text())
            table = report.get("top_confusions")
            print(
                f"report.json written: test accuracy {report['accuracy']:.3f} (N={report['count']}), "
                f"confusion matrix {len(report['confusion_matrix'])}x{len(report['confusion_matrix'])}"
                + (f", top confusions listed: {len(table)}" if table is not None else "")
            )
        else:
            print("report.json NOT written")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
