"""Benchmark: the scan against hostile folders, this tree side by side with a baseline commit.

Every case runs `scan_dataset` in a fresh child process (wall time, CPU
time, its own peak RSS), once with this tree's engine and once with the baseline's
(a commit exported with `git archive`, default `main`):

- 12 photos beside a 2 GB sparse file named huge.png;
- 3,670 flower_photos-sized JPEGs (bench_scan.py's set): the first scan, to
  see what streaming the hash (instead of reading each file whole) costs;
- a fake system tree (3 folders of 2,000 config files, then a deep tree of
  10,000 files), as if `/` had been typed;
- this tree only: the same 2 GB file with the size cap raised to 4 GiB (so it
  is hashed, streamed), and the real `/`, `/usr` and the home folder.

The baseline is never run on `/`, `/usr` or a FIFO: it opens devices and
pipes and reads every file whole (/dev/zero never ends), which would take the
machine down, and a FIFO hangs it forever.

    python bench/bench_hostile_scan.py [--baseline main] [--timeout 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

# VmHWM: the child's own peak RSS (ru_maxrss would include the parent's at fork).
CHILD = """
import json, re, resource, sys, time
from engine.core.errors import StudioError
from engine.data.scan import scan_dataset
start = time.perf_counter()
try:
    dataset = scan_dataset(sys.argv[1], use_cache=False)
    outcome = f"scanned: {len(dataset.images)} images, {len(dataset.problems)} skipped"
except StudioError as exc:
    outcome = "refused: " + str(exc)[:90]
peak = re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read()).group(1)
cpu = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"s": time.perf_counter() - start, "outcome": outcome, "rss_mb": int(peak) / 1024,
                  "cpu_s": cpu.ru_utime + cpu.ru_stime}))
"""
GIB = 1024**3


def export_baseline(rev: str, into: Path) -> Path:
    """The engine at `rev`, exported (read-only for the repository) into `into`."""
    archive = subprocess.run(
        ["git", "-C", str(HERE), "archive", rev, "engine"], capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_scan(tree: Path, root: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    child_env = {**os.environ, "PYTHONPATH": str(tree), **(env or {})}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(root)],
            cwd=tree, env=child_env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        return f"crashed: {done.stderr.strip().splitlines()[-1][:90]}"
    result = json.loads(done.stdout)
    return (
        f"{result['s']:7.2f} s  {result['cpu_s']:6.2f} s CPU  {result['rss_mb']:6.0f} MB peak RSS  "
        f"{result['outcome']}"
    )


def make_cases(work: Path) -> dict[str, Path]:
    from bench.bench_scan import ensure_data
    from tests.support.factories import image_bytes, make_image, write_class_folders

    huge = write_class_folders(work / "huge", {"cats": 6, "dogs": 6})
    with (huge / "cats" / "huge.png").open("wb") as handle:
        handle.write(image_bytes(make_image(0, 99), "PNG"))  # a real PNG, then 2 GB of zeros
        handle.truncate(2 * GIB)
    system = work / "system"
    for name in ("boot", "etc", "lib"):
        (system / name).mkdir(parents=True)
        for i in range(2000):
            (system / name / f"file{i}.conf").write_text(f"setting = {i}\n")
    deep = system / "usr" / "a" / "b" / "c" / "d" / "e" / "f" / "g"
    deep.mkdir(parents=True)
    for i in range(10_000):
        (deep / f"f{i}.h").write_text("#pragma once\n")
    flowers = ensure_data(Path(tempfile.gettempdir()) / "retrain-studio-bench-scan", 3670)
    return {
        "12 photos + 2 GB huge.png": huge,
        "3,670 JPEGs (first scan)": flowers,
        "fake / tree": system,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        work = Path(tmp)
        baseline = export_baseline(args.baseline, work / "baseline")
        (work / "data").mkdir()
        cases = make_cases(work / "data")
        trees = {"this tree": HERE, f"baseline {args.baseline}": baseline}
        for case, root in cases.items():
            print(case)
            for label, tree in trees.items():
                print(f"  {label:<16} {run_scan(tree, root, args.timeout)}")
        huge = cases["12 photos + 2 GB huge.png"]
        print("12 photos + 2 GB huge.png, cap raised to 4 GiB (the 2 GB are hashed, streamed)")
        raised = {"RETRAIN_STUDIO_MAX_IMAGE_BYTES": str(4 * GIB)}
        print(f"  {'this tree':<16} {run_scan(HERE, huge, args.timeout, raised)}")
        for real in ("/", "/usr", str(Path.home())):
            print(f"{real} (this tree only)")
            print(f"  {'this tree':<16} {run_scan(HERE, Path(real), args.timeout)}")
        shutil.rmtree(work / "data", ignore_errors=True)


if __name__ == "__main__":
    main()
