"""Bottleneck extraction in-process vs on Ray (embedded) vs on a two-node local Ray cluster.

All three run on this machine's cores, so this measures Ray's overhead, not a
speed-up: the same `--images` small JPEGs (generated once, `--side` px a
side, in `$TMPDIR`), the default backbone at its own input size, no cache.

- in-process: `extract_bottlenecks` as `retrain` runs it by default.
- ray-local: `--ray local` (an embedded Ray started by the driver; its start is timed).
- ray-2-nodes: `ray start --head` and a second node (1 logical CPU each, token
  authentication) on 127.0.0.1 in a namespace of their own
  (tests/support/ray_cluster.py); the driver joins with `--ray HOST:PORT`.

Each mode runs in a fresh process inside a loopback-only network namespace
and prints its wall time (connect and actor start included) and images/s; then
the per-core figures, a sizing table (images/s per core x cores -> time for
one million photos) and the dataset size from which a cluster pays off.

    python bench/bench_ray.py [--images 20000] [--side 96] [--modes in-process,ray-local,ray-2-nodes]

Needs root (unshare/nsenter), as the cluster tests do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODES = ("in-process", "ray-local", "ray-2-nodes")
SMALL = 256  # images of the run that measures each mode's fixed cost


def _images(count: int, side: int) -> Path:
    folder = Path(tempfile.gettempdir()) / f"bench-ray-{count}-{side}"
    if not (folder / ".complete").exists():
        from tests.support.factories import write_class_folders

        per = count // 4
        write_class_folders(folder, {f"c{i}": per for i in range(4)}, size=(side, side * 3 // 4))
        (folder / ".complete").write_text("ok")
    return folder


def _worker(images: str, ray: str | None) -> None:
    """One timed extraction in this process; prints JSON."""
    start = time.monotonic()
    from engine.data.scan import scan_dataset
    from engine.models.loading import load_feature_runtime
    from engine.train.bottlenecks import extract_bottlenecks

    records = list(scan_dataset(images, use_cache=False).images)
    runtime = load_feature_runtime("efficientnet_lite0")
    ready = time.monotonic()
    result = extract_bottlenecks(records, runtime, ray_address=ray)
    end = time.monotonic()
    print(json.dumps({"images": result.computed, "setup_s": ready - start, "extract_s": end - ready,
                      "nodes": len(result.nodes) or 1}))  # fmt: skip


def _run(command: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{command[-3:]} failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--side", type=int, default=96)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--worker", nargs=2, metavar=("IMAGES", "RAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], None if args.worker[1] == "none" else args.worker[1])
        return
    images = _images(args.images, args.side)
    size = sum(f.stat().st_size for f in images.rglob("*.jpg")) / max(1, args.images)
    cores = os.cpu_count() or 1
    print(f"{args.images} JPEGs, {args.side}x{args.side * 3 // 4} px, {size / 1024:.1f} KB each; "
          f"efficientnet_lite0 at 224; {cores} cores")  # fmt: skip
    worker = [sys.executable, str(Path(__file__).resolve()), "--worker", str(images)]
    small_worker = [*worker[:-1], str(_images(SMALL, args.side))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results: dict[str, dict] = {}
    for mode in args.modes.split(","):
        if mode == "ray-2-nodes":
            from tests.support.ray_cluster import LocalRayCluster

            with LocalRayCluster(nodes=2, cpus=1) as cluster:
                results[mode] = _run(cluster.command([*worker, cluster.address]), cluster.env)
                small = _run(cluster.command([*small_worker, cluster.address]), cluster.env)
        else:
            loopback = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
            ray = "local" if mode == "ray-local" else "none"
            results[mode] = _run([*loopback, *worker, ray], env)
            small = _run([*loopback, *small_worker, ray], env)
        r = results[mode]
        r["rate"] = r["images"] / r["extract_s"]
        # The fixed cost (connect, actors, pipeline start): a small run's time beyond the rate.
        r["fixed_s"] = max(0.0, small["extract_s"] - small["images"] / r["rate"])
        print(f"{mode:12s} {r['extract_s']:7.1f} s  {r['rate']:6.1f} images/s  "
              f"({r['rate'] / cores:.1f} per core; fixed cost {r['fixed_s']:.1f} s, {r['nodes']} node(s))")  # fmt: skip
    base = results.get("in-process")
    if base is None:
        return
    per_core = base["rate"] / cores
    print(f"\nper core, in-process: {per_core:.1f} images/s")
    for mode, r in results.items():
        if mode != "in-process":
            print(f"{mode}: {r['rate'] / base['rate']:.2f}x the in-process rate on the same cores")
    print("\nsizing (in-process rate per core x cores; one million photos):")
    for total in (2, 8, 16, 32, 64, 128, 256):
        print(
            f"  {total:4d} cores  {per_core * total:8.0f} images/s  {1e6 / (per_core * total) / 60:7.1f} min"
        )
    ray = results.get("ray-2-nodes") or results.get("ray-local")
    if ray is not None:
        fixed = ray["fixed_s"]
        efficiency = ray["rate"] / base["rate"]
        print(f"\nRay's fixed cost here: {fixed:.1f} s; its per-core efficiency: {efficiency:.2f}")
        for nodes in (2, 4, 8):
            gain = 1 / (per_core * cores) - 1 / (efficiency * per_core * cores * nodes)
            print(f"  {nodes} nodes like this one pay off from {fixed / gain:,.0f} photos"
                  if gain > 0 else f"  {nodes} nodes never pay off")  # fmt: skip


if __name__ == "__main__":
    main()
