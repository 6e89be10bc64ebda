"""The data review (issue 12): does it find known faults, how fast, how much memory.

1. **Known faults** on the generated demo (300 photos, 5 classes) and on
   scikit-learn's scanned digits written as PNG class folders (1,797 photos,
   10 classes): 5 % of the photos are moved into a wrong class folder, a
   resized (0.9x) re-encoded copy of a test photo is saved under a name that
   falls in train, and a bar chart is dropped into a class. Reported:
   precision and recall of the label-issue list at k = the number flipped,
   whether the copy is a split leak, the chart's rank among the outliers, the
   leak's effect on test accuracy, and the review's time on a cold and on a
   warm feature cache (default backbone, EfficientNet-Lite0 at 224 px).
2. **20,000 photos on a warm cache**: synthetic features (1280 wide, 20
   classes, 200 planted near-copies), since extracting 20,000 real photos on
   2 shared cores takes about ten minutes and the review reads features only.
   Reported: time per part, and the near-duplicate search's peak memory
   (tracemalloc) against the full similarity matrix it avoids.

3. **Why this answer**: a Grad-CAM heatmap per photo, warm (default backbone at 224 px).

    python bench/bench_review.py [--parts faults,scale,heatmap] [--datasets demo,digits]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _make(name: str, work: Path) -> Path:
    root = work / name
    if name == "demo":
        from engine.data.demo import ensure_demo_dataset

        shutil.copytree(ensure_demo_dataset(), root)
    else:
        from tests.support.digits import write_digits

        write_digits(root)
    return root


def faults(name: str, work: Path) -> None:
    from engine.data.scan import scan_dataset
    from engine.train.review import review_dataset
    from tests.support.review_data import draw_chart, flip_labels, leak_copy

    root = _make(name, work)
    flipped = flip_labels(root, 0.05, seed=1)
    test_photo = next(r for r in scan_dataset(root).images if r.split == "test")
    copy = leak_copy(test_photo.path).relative_to(root).as_posix()
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    chart = draw_chart(root / classes[-1] / "chart.png").relative_to(root).as_posix()
    timings = []
    for reuse in (False, False, True):  # cold cache (features computed), warm, the kept review
        start = time.perf_counter()
        review = review_dataset(root, reuse=reuse)
        timings.append(time.perf_counter() - start)
        if not reuse:
            parts = review.seconds
    k = len(flipped)
    top = [f.path for f in review.of_kind("label_issue")[:k]]
    hits = len(set(top) & flipped)
    leaks = {f.path for f in review.of_kind("split_leak")}
    outliers = [f.path for f in review.of_kind("outlier")]
    leak = review.leak
    print(f"\n== {name}: {review.image_count} photos, {k} flipped (5 %)")
    print(f"label issues flagged: {len(review.of_kind('label_issue'))}")
    print(
        f"precision@{k}: {hits / k:.2f}   recall@{k}: {hits / k:.2f}   ({hits} of the {k} flipped in the top {k})"
    )
    print(f"leaked copy {copy} reported as split_leak: {copy in leaks}  (leak rows: {len(leaks)})")
    print(
        f"chart {chart}: outlier rank {outliers.index(chart) + 1 if chart in outliers else 'not flagged'} of {len(outliers)}"
    )
    print(
        f"test accuracy with the leaked photo(s): {leak['test_accuracy']}, without: "
        f"{leak['test_accuracy_without_leaks']} ({leak['leaked_test_photos']} of {leak['test_photos']} test photos leaked)"
    )
    print(f"review time: cold cache {timings[0]:.1f} s, warm cache {timings[1]:.1f} s, the kept review "
          f"{timings[2]:.2f} s; warm parts: " + ", ".join(f"{part} {s:.2f} s" for part, s in parts.items()))  # fmt: skip


def scale(n: int = 20_000, dims: int = 1280, classes: int = 20) -> None:
    import numpy as np

    from engine.train.review import findings as fnd
    from engine.train.review import near_duplicates as nd
    from engine.train.review import review_features

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (classes, dims)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    x = np.maximum(centres[labels] + rng.normal(0, 1.5, (n, dims)).astype(np.float32), 0)
    copies = rng.choice(n, 200, replace=False)
    x[copies[:100]] = x[copies[100:]] * 1.01 + rng.normal(0, 0.01, (100, dims)).astype(np.float32)
    paths = [f"c{labels[i]}/p{i}.jpg" for i in range(n)]
    splits = rng.choice(["train", "validation", "test"], n, p=[0.8, 0.1, 0.1])
    names = [f"c{v:02d}" for v in labels]

    start = time.perf_counter()
    review = review_features(paths, names, list(splits), x)
    took = time.perf_counter() - start
    print(f"\n== {n:,} photos, synthetic features ({dims} wide, {classes} classes), warm cache")
    print(
        f"review: {took:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in review.seconds.items()) + ")"
    )
    print(f"findings: {review.counts()}")

    unit = fnd.normalised(x)
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    i, _, _, _ = nd.feature_candidates(unit)
    took = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"near-duplicate search (features): {took:.1f} s, {len(i)} pairs, peak {peak / 2**20:.0f} MiB "
        f"(blocks of {nd.block_rows(n)} rows); the full {n:,}x{n:,} float32 matrix would be "
        f"{n * n * 4 / 2**30:.1f} GiB"
    )


def heatmap(work: Path, photos: int = 20) -> None:
    """Grad-CAM time per photo, warm, on a default-backbone model (224 px) with a 5-class head."""
    import numpy as np

    from engine.core.rundir import RunDir
    from engine.data.demo import ensure_demo_dataset
    from engine.models.networks import build_feature_extractor
    from engine.models.registry import DEFAULT_BACKBONE, get_backbone
    from engine.serve.gradcam import Heatmapper
    from engine.train.head import Head, assemble_model

    backbone = get_backbone(DEFAULT_BACKBONE)
    size = backbone.input_size
    start = time.perf_counter()
    run = RunDir.create(work / "runs", backbone=backbone.name)
    head = Head(5, backbone.feature_size, 0.0, 0)
    head.dense.set_weights(
        [np.random.default_rng(0).normal(0, 0.05, (backbone.feature_size, 5)), np.zeros(5)]
    )
    model = assemble_model(
        build_feature_extractor(backbone.name, input_size=size), head, backbone.name, size
    )
    model.save(run.model_path)
    run.labels_path.write_text("a\nb\nc\nd\ne\n")
    run.write_config(
        {"input_size": size, "crop_fraction": backbone.crop_fraction, "resample": backbone.resample}
    )
    maker = Heatmapper(run.path)
    files = sorted(ensure_demo_dataset().rglob("*.jpg"))[:photos]
    maker(files[0])
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for path in files:
        maker(path)
    warm = (time.perf_counter() - start) / len(files)
    print(f"\n== Grad-CAM, {backbone.name} at {size} px: first heatmap {cold:.1f} s (TensorFlow, model load), "
          f"then {warm * 1000:.0f} ms per photo (mean of {len(files)}, decode to PNG overlay)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="faults,scale,heatmap")
    parser.add_argument("--datasets", default="demo,digits")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("RETRAIN_STUDIO_HOME", str(work / "home"))
        if "faults" in args.parts:
            for name in args.datasets.split(","):
                faults(name, work)
        if "scale" in args.parts:
            scale()
        if "heatmap" in args.parts:
            heatmap(work)


if __name__ == "__main__":
    main()
