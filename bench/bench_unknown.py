"""The unknown answer (issue 20): how often each candidate rule rejects in-class photos vs strangers.

For each dataset, a run as the studio makes it: features from the default
backbone (EfficientNet-Lite0 on LiteRT at `--size` px), the head fitted by
L-BFGS with its L2 chosen on validation, and every candidate rule
(`engine.serve.unknown.RULE_KINDS`) calibrated by `engine.train.unknown.calibrate`
on the validation split for `--false_rejection` (5 %). Then the rejection rate
of each rule on:

- **in-class test**: the test split of the trained classes (should be near 5 %);
- **held-out classes**: the photos of classes the head never saw (the same
  dataset's other classes: for digits, train 0-4, feed 5-9; for the demo
  flowers, train three kinds, feed the other two);
- **ImageNet photos**: random crops (a quarter to all of the short side) of the
  ImageNet sample photos shipped on this machine (tests/fixtures: scikit-learn's
  china.jpg and flower.jpg, which the backbone labels palace and daisy);
- **drawings**: synthetic black line drawings on white (PIL: lines, circles,
  polygons, random);
- **noise**: uniform RGB noise, and smooth noise (random colour fields blurred).

Datasets: `digits` (scikit-learn's 1,797 scanned handwritten digits, a real
dataset) and `demo` (the studio's generated flowers, engine/data/demo.py).

    python bench/bench_unknown.py [--datasets digits,demo] [--size 224] [--others 80]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def _drawings(count: int, rng: np.random.Generator) -> list[Image.Image]:
    out = []
    for _ in range(count):
        image = Image.new("RGB", (256, 256), "white")
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 9))):
            kind = int(rng.integers(0, 3))
            pts = rng.integers(10, 246, size=(4,)).tolist()
            width = int(rng.integers(2, 7))
            if kind == 0:
                draw.line(pts, fill="black", width=width)
            elif kind == 1:
                x0, y0, x1, y1 = pts
                box = [min(x0, x1), min(y0, y1), max(x0, x1) + 5, max(y0, y1) + 5]
                draw.ellipse(box, outline="black", width=width)
            else:
                poly = [tuple(p) for p in rng.integers(10, 246, size=(int(rng.integers(3, 6)), 2))]
                draw.polygon(poly, outline="black", width=width)
        out.append(image)
    return out


def _noise(count: int, rng: np.random.Generator) -> list[Image.Image]:
    out = []
    for i in range(count):
        if i % 2 == 0:
            pixels = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
            out.append(Image.fromarray(pixels))
        else:
            small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC)
            out.append(image.filter(ImageFilter.GaussianBlur(4)))
    return out


def _imagenet_crops(count: int, rng: np.random.Generator) -> list[Image.Image]:
    photos = [Image.open(p).convert("RGB") for p in sorted(FIXTURES.glob("*.jpg"))]
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        short = min(photo.size)
        side = int(short * rng.uniform(0.25, 1.0))
        x = int(rng.integers(0, photo.width - side + 1))
        y = int(rng.integers(0, photo.height - side + 1))
        out.append(photo.crop((x, y, x + side, y + side)))
    return out


def _dataset(name: str, folder: Path) -> tuple[dict[str, list[Path]], list[str], list[str]]:
    """Photos per class, the trained classes and the held-out ones."""
    if name == "digits":
        from tests.support.digits import write_digits

        root = write_digits(folder / "digits")
        trained = [str(d) for d in range(5)]
    elif name == "demo":
        from engine.data.demo import write_demo_dataset

        root = write_demo_dataset(folder / "demo")
        trained = ["daisy", "roses", "sunflowers"]
    else:
        raise SystemExit(f"--datasets: {name!r} is unknown; choose digits or demo")
    classes = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
    photos = {c: sorted((Path(root) / c).iterdir()) for c in classes}
    return photos, trained, [c for c in classes if c not in trained]


def _features(runtime, images: list[Image.Image], backbone, size: int) -> np.ndarray:
    from engine.data.geometry import prepare_image

    out = []
    for start in range(0, len(images), 32):
        batch = np.stack(
            [
                prepare_image(im, size, crop_fraction=backbone.crop_fraction, resample=backbone.resample)
                for im in images[start : start + 32]
            ]
        )
        out.append(runtime.features(batch))
    return np.concatenate(out) if out else np.zeros((0, 1))


def run_dataset(name: str, work: Path, args: argparse.Namespace) -> None:
    from engine.models.loading import load_feature_runtime
    from engine.models.registry import get_backbone
    from engine.serve.unknown import RULE_KINDS
    from engine.train.softmax import choose_l2
    from engine.train.unknown import calibrate, probabilities_of

    rng = np.random.default_rng(0)
    backbone = get_backbone("efficientnet_lite0")
    runtime = load_feature_runtime(backbone.name, input_size=args.size)
    photos, trained, held_out = _dataset(name, work)
    start = time.monotonic()

    def load(paths):
        return [Image.open(p).convert("RGB") for p in paths]

    split_x: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    split_y: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for index, label in enumerate(trained):
        paths = list(photos[label])
        rng.shuffle(paths)
        n = len(paths)
        cut = {"train": paths[: int(n * 0.6)], "validation": paths[int(n * 0.6) : int(n * 0.8)],
               "test": paths[int(n * 0.8) :]}  # fmt: skip
        for split, chosen in cut.items():
            split_x[split].append(_features(runtime, load(chosen), backbone, args.size))
            split_y[split].append(np.full(len(chosen), index))
    features = {s: np.concatenate(v) for s, v in split_x.items()}
    truth = {s: np.concatenate(v) for s, v in split_y.items()}
    head, _ = choose_l2(
        (features["train"], truth["train"]), (features["validation"], truth["validation"]), len(trained)
    )
    test_acc = float((head.probabilities(features["test"]).argmax(1) == truth["test"]).mean())
    strangers = {
        "held-out classes": load([p for c in held_out for p in photos[c]]),
        "ImageNet photos": _imagenet_crops(args.others, rng),
        "drawings": _drawings(args.others, rng),
        "noise": _noise(args.others, rng),
    }
    kinds = {"in-class test": features["test"]}
    kinds.update({k: _features(runtime, v, backbone, args.size) for k, v in strangers.items()})
    rules = {
        kind: calibrate(
            features, truth, head.kernel, head.bias, false_rejection=args.false_rejection, kind=kind
        ).rule
        for kind in RULE_KINDS
    }
    print(
        f"\n## {name}: trained on {', '.join(trained)} ({len(truth['train'])} train, "
        f"{len(truth['validation'])} validation photos; test accuracy {test_acc:.1%}); held out "
        f"{', '.join(held_out)}; {args.size} px; {time.monotonic() - start:.0f} s\n"
    )
    header = "| photos | N | " + " | ".join(RULE_KINDS) + " |"
    print(header)
    print("|" + " --- |" * (len(RULE_KINDS) + 2))
    for kind, x in kinds.items():
        p = probabilities_of(x, head.kernel, head.bias)
        cells = [f"{rules[r].rejects(rules[r].scores(p, x)).mean():.1%}" for r in RULE_KINDS]
        print(f"| {kind} | {len(x)} | " + " | ".join(cells) + " |")
    val_p = probabilities_of(features["validation"], head.kernel, head.bias)
    cells = [
        f"{rules[r].rejects(rules[r].scores(val_p, features['validation'])).mean():.1%}"
        for r in RULE_KINDS
    ]
    print(f"| (validation, calibrated on) | {len(truth['validation'])} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,demo")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--others", type=int, default=80, help="photos of each synthetic kind")
    parser.add_argument("--false_rejection", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-unknown-") as tmp:
        print(
            f"Rejection rate per kind of photo, each rule at {args.false_rejection:.0%} false rejection"
        )
        for name in args.datasets.split(","):
            run_dataset(name.strip(), Path(tmp), args)


if __name__ == "__main__":
    main()
