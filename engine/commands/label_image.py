"""`python -m engine label_image`: label_image.py for a trained run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `label_image` command.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    parser = subparsers.add_parser(
        "label_image",
        help="label photos with a trained model",
        description="Print the top labels of a photo (label_image.py's output), or a CSV for "
        "many photos or a folder. --graph may be a run folder (then --labels is not needed).",
    )
    parser.add_argument(
        "--graph", required=True, help="model: .tflite, .keras, SavedModel or run folder"
    )
    parser.add_argument("--labels", help="labels file (default: the run's labels.txt)")
    parser.add_argument(
        "--image", action="append", required=True, help="image file or folder; may be repeated"
    )
    parser.add_argument("--top_k", type=int, default=5, help="labels to print per image")
    parser.add_argument("--output_csv", help="write the CSV here instead of stdout")
    parser.add_argument(
        "--prefer", choices=("litert", "tensorflow"), default="litert",
        help="for a run folder: the exported TFLite model (LiteRT) or model.keras",
    )  # fmt: skip
    parser.set_defaults(func=run_label_image)


def run_label_image(args: argparse.Namespace) -> int:
    """Run `label_image` from parsed arguments.

    One image: `Evaluation time (1-image): 0.018s`, then `<label> <probability>`
    lines, best first. Many images or a folder: a CSV with one row per image;
    an image that fails is listed with its error and the others still work.

    Args:
        args: parsed `label_image` arguments.

    Returns:
        0, or 1 when some images in a batch failed.

    Raises:
        StudioError: bad model, labels or image (printed as one line by the CLI).
    """
    from engine.core.errors import StudioError
    from engine.core.fsutil import atomic_write_text
    from engine.serve.inference import Predictor, image_files

    if args.top_k < 1:
        raise StudioError(f"--top_k={args.top_k} is not allowed; use 1 or more")
    graph = Path(args.graph)
    if graph.is_dir() and (graph / "model.keras").exists() and args.labels is None:
        predictor = Predictor.from_run(graph, prefer=args.prefer)
    else:
        predictor = Predictor.from_files(graph, args.labels)

    single = len(args.image) == 1 and not Path(args.image[0]).is_dir()
    if single:
        path = Path(args.image[0])
        if not path.is_file():
            raise StudioError(f"--image {str(path)!r} does not exist; give an image file or folder")
        prediction = predictor.predict(str(path), top_k=args.top_k)
        print(f"Evaluation time (1-image): {prediction.seconds:.3f}s")
        for label, probability in prediction.top_k:
            print(f"{label} {probability:.5f}")
        return 0

    files = image_files(args.image)
    if not files:
        raise StudioError(f"no files found in {args.image}; give image files or a folder of images")
    table = predictor.predict_many([str(f) for f in files], top_k=args.top_k)
    text = table.to_csv(index=False)
    if args.output_csv:
        atomic_write_text(args.output_csv, text)
    else:
        sys.stdout.write(text)
    failed = int(table["error"].notna().sum())
    ok = len(table) - failed
    timed = table["seconds"].dropna()
    mean = f", {timed.mean() * 1000:.1f} ms per image" if len(timed) else ""
    print(f"{ok} labelled, {failed} failed{mean}", file=sys.stderr)
    return 1 if failed else 0
