"""`python -m engine backbones` and `python -m engine imagenet`: the pretrained networks.

`backbones` prints the registry with whether each network's weights are on
this machine. `imagenet` labels one photo with a backbone's own ImageNet
classifier, printed the way TensorFlow's label_image does.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from engine.commands.table import format_table
from engine.core.errors import StudioError
from engine.data.images import load_image
from engine.models.imagenet import imagenet_labels
from engine.models.loading import load_imagenet_runtime
from engine.models.registry import DEFAULT_BACKBONE, get_backbone, list_backbones

DEFAULT_TOP_K = 5


def register(subparsers: Any) -> None:
    """Add the `backbones` and `imagenet` commands.

    Args:
        subparsers: the object returned by `ArgumentParser.add_subparsers`.
    """
    table = subparsers.add_parser(
        "backbones",
        help="list the pretrained networks and whether their weights are available offline",
        description="List the pretrained networks a head can be retrained on.",
    )
    table.set_defaults(func=run_backbones)

    label = subparsers.add_parser(
        "imagenet",
        help="label a photo with a backbone's own 1000-class ImageNet classifier",
        description="Label one photo with a pretrained network's ImageNet classifier "
        "(a quick check that the backbone works, with no training).",
    )
    label.add_argument("--image", required=True, help="the photo to label")
    label.add_argument(
        "--top_k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"how many classes to print (default {DEFAULT_TOP_K})",
    )
    label.add_argument(
        "--architecture",
        default=DEFAULT_BACKBONE,
        help=f"a backbone from `python -m engine backbones` (default {DEFAULT_BACKBONE})",
    )
    label.add_argument(
        "--runtime",
        choices=("litert", "tensorflow"),
        default="litert",
        help="run the network on LiteRT (default; falls back to TensorFlow if it cannot) or TensorFlow",
    )
    label.set_defaults(func=run_imagenet)


def run_backbones(args: argparse.Namespace) -> int:
    """Print the registry with availability; weights missing get a hint line below the table."""
    rows = [["name", "input", "features", "crop", "normalization", "weights", "available"]]
    hints = []
    for b in list_backbones():
        available = b.weights_available()
        default = " (default)" if b.name == DEFAULT_BACKBONE else ""
        rows.append(
            [
                b.name + default,
                "/".join(str(s) for s in b.input_sizes),
                str(b.feature_size),
                f"{b.crop_fraction:g}",
                b.normalization,
                b.weights_source,
                _availability(b, available),
            ]
        )
        if not available:
            hints.append(f"  {b.name}: {b.weights_hint()}")
    print(format_table(rows))
    if hints:
        print("\nWeights not on this machine are downloaded on first use; without a network:")
        print("\n".join(hints))
    return 0


def _availability(backbone: Any, available: bool) -> str:
    if not backbone.pretrained:
        return "trained from scratch"
    return "yes (offline)" if available else "download"


def run_imagenet(args: argparse.Namespace) -> int:
    """Label `args.image` and print the timing line, then `<class> <probability>` lines."""

    if args.top_k < 1:
        raise StudioError(f"--top_k={args.top_k} must be at least 1")
    backbone = get_backbone(args.architecture)
    # Decode first: a bad photo should fail before seconds of model loading.
    image = load_image(args.image, min_side=math.ceil(backbone.input_size / backbone.crop_fraction))
    batch = backbone.prepare(image)[None]
    model = load_imagenet_runtime(backbone.name, prefer=args.runtime)
    if model.notice:
        print(f"note: {model.notice}", file=sys.stderr)
    model.features(batch)  # warm-up: the first call builds kernels and buffers
    start = time.perf_counter()
    probabilities = model.features(batch)[0]
    elapsed = time.perf_counter() - start
    labels = imagenet_labels()
    print(f"Evaluation time (1-image): {elapsed:.3f}s")
    for index in probabilities.argsort()[::-1][: min(args.top_k, len(labels))]:
        print(f"{labels[index]} {probabilities[index]:.5f}")
    return 0
