"""Benchmark: scanning a flower_photos-sized dataset, first time and again.

Generates 3,670 JPEGs of ~60 KB (flower_photos' count and typical size) in 5
class folders, once, under the system temp folder (reused by later runs), then
prints:

- the first scan (empty scan cache: every file read, hashed and decoded),
- a rescan with nothing changed (answered from the cache),
- a rescan after touching 1% of the files.

Goals (issue 3): first scan under 10 s, unchanged rescan well under 1 s.

    python bench/bench_scan.py [--count 3670] [--data DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
# Bump when generation changes so a stale cached set is rebuilt.
DATA_VERSION = 1


def _jpeg(rng: np.random.Generator) -> bytes:
    """A photo-like JPEG of ~60 KB: smooth colour structure plus sensor-like noise."""
    width, height = int(rng.integers(320, 500)), int(rng.integers(240, 375))
    coarse = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    noisy = smooth.astype(np.int16) + rng.normal(0, 14, smooth.shape).astype(np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def ensure_data(root: Path, count: int) -> Path:
    """The benchmark dataset, generated once and reused."""
    marker = root / f".complete-{DATA_VERSION}-{count}"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(3670)
    start = time.perf_counter()
    for i in range(count):
        folder = root / CLASSES[i % len(CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"photo_{i:05d}.jpg").write_bytes(_jpeg(rng))
    (root / "LICENSE.txt").write_text("generated for bench_scan.py\n")
    marker.touch()
    print(f"generated {count} JPEGs in {time.perf_counter() - start:.1f} s (kept in {root})")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3670)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "retrain-studio-bench-scan"
    )
    args = parser.parse_args()

    root = ensure_data(args.data, args.count)
    files = sorted(root.rglob("*.jpg"))
    total_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"dataset: {len(files)} JPEGs, {total_mb:.0f} MB, mean {total_mb * 1e3 / len(files):.0f} KB")
    print(f"cores: {os.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory(prefix="bench-scan-cache-") as cache:
        os.environ["RETRAIN_STUDIO_CACHE"] = cache
        from engine.data.scan import scan_dataset

        start = time.perf_counter()
        first = scan_dataset(root)
        first_s = time.perf_counter() - start
        assert len(first.images) == len(files) and not first.problems, first.problems[:3]

        start = time.perf_counter()
        again = scan_dataset(root)
        again_s = time.perf_counter() - start
        assert again.cache_hits == len(files) and again.fingerprint == first.fingerprint

        for path in files[::100]:
            os.utime(path)
        start = time.perf_counter()
        touched = scan_dataset(root)
        touched_s = time.perf_counter() - start

    print(
        f"first scan:            {first_s:6.2f} s  ({len(files) / first_s:,.0f} images/s)  goal < 10 s"
    )
    print(f"rescan, unchanged:     {again_s:6.2f} s  (all {again.cache_hits} from cache)  goal < 1 s")
    print(
        f"rescan, 1% touched:    {touched_s:6.2f} s  ({len(files) - touched.cache_hits} checked again)"
    )
    print(
        "note: the files were in the OS page cache (generated or read before); a cold disk adds read time"
    )


if __name__ == "__main__":
    main()
