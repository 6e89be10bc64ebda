"""The fast path: LiteRT vs TensorFlow for bottlenecks and inference, side by side.

Four measurements, each printing its figures and the ratio between the paths
run in the same process on the same files (a flower_photos-like set the
benchmark draws once: `--images` JPEGs, 320-500 px a side, 5 classes):

1. extract: end-to-end bottleneck extraction (decode, crop/resize, features;
   no cache) with the default backbone: LiteRT (`extract_bottlenecks`, PIL
   decode in threads, draft mode) vs TensorFlow tf.data (`decoder="tf"`,
   batch 32) vs a per-image TensorFlow loop (PIL decode, one `tf.function`
   call per image: retrain.py's way). `--sweep` also tries LiteRT layouts
   (interpreters x threads each, decode threads).
2. latency: single-image prediction with a trained run, warm: `Predictor` on
   `export/model.tflite` (LiteRT) vs on `model.keras` (TensorFlow), p50/p95 of
   the model call and of the whole `predict` (decode + prepare + model).
3. cold: time from process start to the first printed prediction, and peak
   RSS, of `python -m engine label_image` on the LiteRT and the TensorFlow path,
   each in a fresh process.
4. accuracy: test accuracy of a default retrain on the demo dataset with
   LiteRT bottlenecks vs TensorFlow ones (tf.data decode); and draft-mode
   decoding vs full decoding on the demo photos scaled up 2.5x (feature max
   abs difference, nearest-class-mean test accuracy on each).

    python bench/bench_fast_path.py [--only extract,latency,cold,accuracy]
        [--images 300] [--repeats 3] [--sweep] [--keep DIR]

Data, caches and runs go under a fresh temporary folder (removed at the end
unless `--keep`); the drawn photos are kept in `$TMPDIR` between runs.
Goals (issue 6): extraction >= 150 images/s, >= 4x the per-image loop and
>= 1.4x tf.data; single-image p50 <= 8 ms; LiteRT and TensorFlow accuracy
within 0.5 points.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SECTIONS = ("extract", "latency", "cold", "accuracy")
FLOWERS_VERSION = 1
MIN_SIDE, MAX_SIDE = 320, 500
UPSCALE = 4  # demo photos (240-500 px) become 960-2000 px: most decode at a reduced scale


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def flower_set(count: int) -> Path:
    """A flower_photos-like folder of `count` JPEGs, 320-500 px a side, drawn once and kept."""
    from PIL import Image

    from engine.data.demo import DEMO_CLASSES, render_demo_image

    root = Path(tempfile.gettempdir()) / f"retrain-studio-bench-fastpath-v{FLOWERS_VERSION}-{count}"
    marker = root / ".complete"
    if marker.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    classes = list(DEMO_CLASSES)
    rng = np.random.default_rng(6)
    for n in range(count):
        label = classes[n % len(classes)]
        image = render_demo_image(label, 1000 + n)
        size = (int(rng.integers(MIN_SIDE, MAX_SIDE + 1)), int(rng.integers(MIN_SIDE, MAX_SIDE + 1)))
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        image.resize(size, Image.Resampling.BICUBIC).save(folder / f"{n:04d}.jpg", quality=88)
    marker.touch()
    return root


def _records(root: Path) -> list[Any]:
    from engine.data.scan import scan_dataset

    return list(scan_dataset(root, use_cache=False).images)


def _best_and_median(rates: list[float]) -> str:
    return f"best {max(rates):6.1f}, median {statistics.median(rates):6.1f} images/s"


# --------------------------------------------------------------------------- 1. extract


def bench_extract(records: list[Any], repeats: int, sweep: bool) -> None:
    """End-to-end bottleneck extraction on three paths, interleaved `repeats` times."""
    from engine.data.batches import default_workers
    from engine.models.loading import load_feature_runtime
    from engine.models.registry import DEFAULT_BACKBONE
    from engine.train.bottlenecks import extract_bottlenecks

    name = DEFAULT_BACKBONE
    lite = load_feature_runtime(name, prefer="litert")
    tf_runtime = load_feature_runtime(name, prefer="tensorflow")
    count = len(records)
    print(f"\n== extract: {count} JPEGs, {name} @ {lite.input_size} px, no cache ({_load()})")
    print(
        f"LiteRT layout: {lite.concurrency} interpreter(s) x {lite.num_threads} thread(s); "
        f"decode threads {default_workers()}"
    )

    def per_image_loop() -> None:
        for record in records:
            image = tf_runtime.backbone.load(record.path, tf_runtime.input_size)
            tf_runtime.features(image[None])

    paths: dict[str, Callable[[], Any]] = {
        "LiteRT (PIL threads, draft)": lambda: extract_bottlenecks(records, lite),
        "TF tf.data + batch 32": lambda: extract_bottlenecks(records, tf_runtime, decoder="tf"),
        "TF per-image loop": per_image_loop,
    }
    # Warm-up: kernels, buffers and tf.data tracing (the per-image loop shares the TF runtime).
    for label in ("LiteRT (PIL threads, draft)", "TF tf.data + batch 32"):
        paths[label]()
    rates: dict[str, list[float]] = {label: [] for label in paths}
    cpu_ms: dict[str, list[float]] = {label: [] for label in paths}
    for _ in range(repeats):
        for label, run in paths.items():
            start, cpu = time.perf_counter(), time.process_time()
            run()
            rates[label].append(count / (time.perf_counter() - start))
            cpu_ms[label].append((time.process_time() - cpu) * 1000 / count)
    # CPU time per image (all threads) does not depend on other load: 2 idle
    # cores could do at most 2000 / cpu_ms images per second.
    for label, values in rates.items():
        cpu = statistics.median(cpu_ms[label])
        print(
            f"  {label:<28} {_best_and_median(values)} | CPU {cpu:5.2f} ms/image "
            f"(2-core ceiling {2000 / cpu:5.0f} images/s)"
        )
    lite_rate = statistics.median(rates["LiteRT (PIL threads, draft)"])
    print(
        f"  ratio (medians): LiteRT / tf.data = "
        f"{lite_rate / statistics.median(rates['TF tf.data + batch 32']):.2f}x (goal >= 1.4x), "
        f"LiteRT / per-image loop = {lite_rate / statistics.median(rates['TF per-image loop']):.2f}x "
        f"(goal >= 4x); LiteRT >= 150 images/s: {'met' if lite_rate >= 150 else 'missed'}"
    )
    print(f"  ({_load()} after)")
    if sweep:
        _sweep(records, lite, repeats)


def _sweep(records: list[Any], lite: Any, repeats: int) -> None:
    """LiteRT layouts on the same files: interpreters x threads, and decode threads."""
    from engine.models.runtime import LiteRTFeatureRuntime
    from engine.train.bottlenecks import extract_bottlenecks

    print(f"\n-- LiteRT layout sweep ({_load()})")
    layouts = [(1, 2), (2, 1), (1, 1), (2, 2)]
    loaded = {
        layout: LiteRTFeatureRuntime(
            lite.backbone,
            lite.input_size,
            lite.model_path,
            instances=layout[0],
            num_threads=layout[1],
        )
        for layout in layouts
    }
    rates: dict[tuple[int, int, int], list[float]] = {}
    for _ in range(repeats):
        for layout, loaded_runtime in loaded.items():
            for workers in (1, 2, 3):
                start = time.perf_counter()
                extract_bottlenecks(records, loaded_runtime, workers=workers)
                rate = len(records) / (time.perf_counter() - start)
                rates.setdefault((*layout, workers), []).append(rate)
    for (instances, threads, workers), values in rates.items():
        print(
            f"  {instances} interpreter(s) x {threads} thread(s), {workers} decode thread(s): "
            f"{_best_and_median(values)}"
        )
    print(f"  ({_load()} after)")


# --------------------------------------------------------------------------- a run to predict with


def train_run(
    root: Path, runs: Path, *, runtime: str = "litert", steps: int = 4000, **extra: Any
) -> Any:
    """A finished retrain on `root` (export/model.tflite is written by every run)."""
    from engine.core.rundir import RunDir
    from engine.train.config import TrainConfig
    from engine.train.retrain import retrain

    run = RunDir.create(runs, backbone="efficientnet_lite0")
    config = TrainConfig(
        image_dir=str(root), runtime=runtime, how_many_training_steps=steps, seed=6, **extra
    )
    retrain(config, run)
    return run


# --------------------------------------------------------------------------- 2. latency


def bench_latency(run: Any, images: list[Path], rounds: int) -> None:
    """Warm single-image prediction, LiteRT (model.tflite) vs TensorFlow (model.keras)."""
    from engine.serve.inference import Predictor

    print(f"\n== latency: one image at a time, warm, {len(images)} photos x {rounds} ({_load()})")
    figures = {}
    for prefer in ("litert", "tensorflow"):
        predictor = Predictor.from_run(run.path, prefer=prefer)
        for path in images[:5]:
            predictor.predict(str(path))
        model_ms, total_ms = [], []
        for _ in range(rounds):
            for path in images:
                start = time.perf_counter()
                prediction = predictor.predict(str(path))
                total_ms.append((time.perf_counter() - start) * 1000)
                model_ms.append(prediction.seconds * 1000)
        figures[prefer] = statistics.median(model_ms)
        print(
            f"  {prefer:<10} ({predictor.model_path.name}): model p50 {statistics.median(model_ms):5.1f} ms, "
            f"p95 {_percentile(model_ms, 0.95):5.1f} ms | decode+prepare+model p50 "
            f"{statistics.median(total_ms):5.1f} ms, p95 {_percentile(total_ms, 0.95):5.1f} ms"
        )
    print(
        f"  ratio (model p50): TensorFlow / LiteRT = {figures['tensorflow'] / figures['litert']:.1f}x; "
        f"LiteRT p50 <= 8 ms: {'met' if figures['litert'] <= 8 else 'missed'} ({_load()} after)"
    )


# --------------------------------------------------------------------------- 3. cold


# The child reports its own peak RSS (VmHWM of its address space): a parent's
# rusage would count the pages of this (large) process that the child shared
# between fork and exec.
_CHILD = """
import runpy, sys
sys.argv = ["engine", *sys.argv[1:]]
try:
    runpy.run_module("engine", run_name="__main__", alter_sys=True)
finally:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("peak_rss_kb", line.split()[1], flush=True)
"""


def _cold_once(run: Any, image: Path, prefer: str, env: dict[str, str]) -> tuple[float, float, str]:
    command = [
        sys.executable, "-c", _CHILD, "label_image",
        "--graph", str(run.path), "--image", str(image), "--prefer", prefer,
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    elapsed = 0.0
    first = ""
    peak_kb = 0.0
    assert process.stdout is not None
    for line in process.stdout:
        if not elapsed and not line.startswith("Evaluation time"):
            elapsed = time.perf_counter() - start  # the first label line: the first prediction
            first = line.strip()
        if line.startswith("peak_rss_kb"):
            peak_kb = float(line.split()[1])
    if process.wait():
        raise RuntimeError(f"label_image exited with {process.returncode}")
    return elapsed, peak_kb / 1024, first


def bench_cold(run: Any, image: Path, repeats: int) -> None:
    """Process start to first prediction, and peak RSS, in fresh processes."""
    print(f"\n== cold start: python -m engine label_image, fresh process each time ({_load()})")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    figures: dict[str, tuple[list[float], list[float]]] = {}
    answers: dict[str, str] = {}
    for _ in range(repeats):
        for prefer in ("litert", "tensorflow"):
            seconds, rss_mb, answers[prefer] = _cold_once(run, image, prefer, env)
            times, peaks = figures.setdefault(prefer, ([], []))
            times.append(seconds)
            peaks.append(rss_mb)
    for prefer, (times, peaks) in figures.items():
        print(
            f"  {prefer:<10}: first prediction after {statistics.median(times):5.2f} s "
            f"(min {min(times):.2f}, max {max(times):.2f}); peak RSS {max(peaks):6.0f} MB"
        )
    lite_t, tf_t = (statistics.median(figures[p][0]) for p in ("litert", "tensorflow"))
    lite_m, tf_m = (max(figures[p][1]) for p in ("litert", "tensorflow"))
    print(
        f"  ratio: time {tf_t / lite_t:.1f}x, RSS {tf_m / lite_m:.1f}x less on LiteRT ({_load()} after)"
    )


# --------------------------------------------------------------------------- 4. accuracy


def bench_accuracy(work: Path, steps: int) -> None:
    """Default retrain on the demo dataset, LiteRT vs TensorFlow bottlenecks; draft vs full decode."""
    from engine.data.demo import ensure_demo_dataset

    demo = ensure_demo_dataset(work / "demo")
    print(f"\n== accuracy: demo dataset, default settings, {steps} steps, seed 6 ({_load()})")
    accuracies = {}
    for runtime in ("litert", "tensorflow"):
        run = train_run(
            demo, work / "runs-accuracy", runtime=runtime, steps=steps,
            bottleneck_dir=str(work / f"bottlenecks-{runtime}"),
        )  # fmt: skip
        report = run.read_report()
        config = run.read_config()
        accuracies[runtime] = report["test_accuracy"]
        print(
            f"  {runtime:<10} (decoder {config.get('bottleneck_decoder')}): test accuracy "
            f"{report['test_accuracy'] * 100:.1f} % (N={report['count']}), bottlenecks "
            f"{run.read_status()['bottlenecks']['seconds']:.1f} s"
        )
    gap = abs(accuracies["litert"] - accuracies["tensorflow"]) * 100
    print(f"  difference {gap:.1f} points (goal <= 0.5): {'met' if gap <= 0.5 else 'missed'}")
    _draft_accuracy(demo, work)


def _draft_accuracy(demo: Path, work: Path) -> None:
    from PIL import Image

    from engine.data.batches import iter_prepared_batches
    from engine.data.geometry import draft_min_side
    from engine.data.images import load_image
    from engine.data.scan import scan_dataset
    from engine.models.loading import load_feature_runtime
    from engine.models.registry import DEFAULT_BACKBONE

    big = work / "demo-large"
    for path in sorted(demo.glob("*/*.jpg")):
        target = big / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            size = (round(image.width * UPSCALE), round(image.height * UPSCALE))
            image.resize(size, Image.Resampling.BICUBIC).save(target, quality=90)
    dataset = scan_dataset(big, use_cache=False)
    records = list(dataset.images)
    lite = load_feature_runtime(DEFAULT_BACKBONE)
    min_side = draft_min_side(lite.input_size, lite.backbone.crop_fraction)
    drafted = sum(min(r.width, r.height) >= 2 * min_side for r in records)  # PIL halves at least

    def features(draft: bool) -> tuple[np.ndarray, float]:
        def load(record: Any) -> np.ndarray:
            image = load_image(record.path, min_side=min_side if draft else None)
            return lite.backbone.prepare(image, lite.input_size)

        start = time.perf_counter()
        rows: dict[int, np.ndarray] = {}
        for indices, batch, _ in iter_prepared_batches(records, load):
            assert batch is not None
            for k, feature in zip(indices, lite.features(batch), strict=True):
                rows[k] = feature
        return np.stack([rows[i] for i in range(len(records))]), time.perf_counter() - start

    full, full_s = features(False)
    draft, draft_s = features(True)
    labels = np.asarray([dataset.labels.index(r.label) for r in records])
    split = np.asarray([r.split for r in records])
    scores = {}
    train, test = split == "train", split == "test"
    for name, x in (("full", full), ("draft", draft)):
        # nearest class mean: no dependency beyond numpy, and the same for both decodes
        classes = np.unique(labels[train])
        means = np.stack([x[train & (labels == c)].mean(axis=0) for c in classes])
        guess = classes[np.argmin(((x[test][:, None, :] - means[None]) ** 2).sum(-1), axis=1)]
        scores[name] = float((guess == labels[test]).mean()) * 100
    cosine = np.sum(full * draft, axis=1) / (
        np.linalg.norm(full, axis=1) * np.linalg.norm(draft, axis=1) + 1e-12
    )
    print(
        f"  draft vs full decode, {len(records)} demo photos x{UPSCALE} ({drafted} decoded at a "
        f"reduced scale): feature max abs diff {np.max(np.abs(full - draft)):.3f}, mean "
        f"{np.mean(np.abs(full - draft)):.4f}, lowest cosine {np.min(cosine):.5f} "
        f"(features up to {np.max(np.abs(full)):.2f}); nearest-class-mean test accuracy full "
        f"{scores['full']:.1f} %, draft {scores['draft']:.1f} % (N={int((split == 'test').sum())}); "
        f"extraction {len(records) / full_s:.0f} vs {len(records) / draft_s:.0f} images/s"
    )


# --------------------------------------------------------------------------- main


def main() -> None:
    """Run the chosen sections and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4000, help="training steps of the runs")
    parser.add_argument("--sweep", action="store_true", help="also try LiteRT layouts")
    parser.add_argument("--keep", help="keep the work folder here instead of a temporary one")
    args = parser.parse_args()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--only {unknown} unknown; choose from {','.join(SECTIONS)}")

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="retrain-studio-bench-fast-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["RETRAIN_STUDIO_HOME"] = str(work / "home")
    print(f"{os.cpu_count()} cores, {_load()}, work folder {work}")
    try:
        flowers = flower_set(args.images)
        records = _records(flowers)
        if "extract" in sections:
            bench_extract(records, args.repeats, args.sweep)
        if "latency" in sections or "cold" in sections:
            run = train_run(flowers, work / "runs", steps=min(args.steps, 500))
            photos = [r.path for r in records[:: max(1, len(records) // 40)]][:40]
            if "latency" in sections:
                bench_latency(run, photos, args.repeats)
            if "cold" in sections:
                bench_cold(run, photos[0], args.repeats)
        if "accuracy" in sections:
            bench_accuracy(work, args.steps)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
