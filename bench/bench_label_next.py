"""Label these next (issue 19): how fast accuracy rises with photos labelled in ActiveLab order vs at random.

A real dataset, no download: scikit-learn's 1,797 scanned handwritten digits
(`load_digits`), written as 32x32 PNG class folders (tests/support/digits.py), features
from the default backbone (EfficientNet-Lite0 at 224 px, from the bottleneck cache).
The test split (retrain.py's hash rule, `--testing_percentage`) only scores; the rest is
the pool of "unsorted" photos whose labels are revealed as they are labelled. Both orders
start from the same `--start` photos per class; each round labels `--batch` more, chosen
by ActiveLab on a head fitted to what is labelled so far (as the Dataset page re-ranks
after each filing), or at random; the accuracy is that head's on the test split. Means
over `--seeds` starts.

    python bench/bench_label_next.py [--start 2] [--batch 10] [--rounds 20] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    from engine.core.progress import TerminalBar
    from engine.data.scan import scan_dataset
    from engine.train.review.features import dataset_features
    from engine.train.review.label_next import order_curve
    from tests.support.digits import write_digits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--testing_percentage", type=float, default=20)
    parser.add_argument("--json", help="also write the curve here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-label-next-") as tmp:
        os.environ.setdefault("RETRAIN_STUDIO_HOME", str(Path(tmp) / "home"))
        root = write_digits(Path(tmp) / "digits")
        dataset = scan_dataset(root, validation_percentage=0, testing_percentage=args.testing_percentage)
        bar = TerminalBar(sys.stderr)
        result = dataset_features(dataset.images, progress=bar)
        records = [dataset.images[k] for k in result.kept]
        labels = np.array([dataset.labels.index(r.label) for r in records])
        test = np.array([r.split == "test" for r in records])
        start = time.perf_counter()
        curve = order_curve(
            result.features, labels, test, start_per_class=args.start, batch=args.batch,
            rounds=args.rounds, seeds=args.seeds, progress=bar,
        )  # fmt: skip
        took = time.perf_counter() - start
    print(
        f"\n== digits: {len(records)} photos, {len(dataset.labels)} classes, {curve['test_photos']} test "
        f"photos; start {args.start} per class, +{args.batch} per round, {args.seeds} seeds ({took:.0f} s)"
    )
    print("labelled   ActiveLab   random   gain")
    for n, a, r in zip(curve["labelled"], curve["activelab"], curve["random"], strict=True):
        print(f"{n:8}   {a:8.1%}   {r:7.1%}   {a - r:+.1%}")
    best_random = max(curve["random"])
    reach = next(
        (n for n, a in zip(curve["labelled"], curve["activelab"], strict=True) if a >= best_random), None
    )
    print(
        f"random order's best ({best_random:.1%} at {curve['labelled'][-1]} labelled) reached by ActiveLab at {reach} labelled"
    )
    if args.json:
        curve["dataset"] = "scikit-learn digits (1,797 scans, 10 classes), EfficientNet-Lite0 features"
        curve["command"] = "python bench/bench_label_next.py " + " ".join(sys.argv[1:])
        Path(args.json).write_text(json.dumps(curve, indent=1))


if __name__ == "__main__":
    main()
