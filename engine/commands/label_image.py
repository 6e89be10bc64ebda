"""`python -m engine label_image`: label_image.py for a trained model.

Takes the codelab's label_image.py flags. `--graph` is recognised by its
content (a `.keras` zip saved as `retrained_graph.pb` works), the labels and
the preprocessing travel inside every model the studio writes, so `--labels`
and label_image.py's `--input_*` flags are not needed; those are accepted
with a one-line note.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# label_image.py's flags that describe preprocessing or graph tensors: here the
# preprocessing is inside the model and its metadata, so they change nothing.
IGNORED_FLAGS = (
    "input_height",
    "input_width",
    "input_mean",
    "input_std",
    "input_layer",
    "output_layer",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `label_image` command.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    parser = subparsers.add_parser(
        "label_image",
        help="label photos with a trained model",
        description="Print the top labels of a photo (label_image.py's output), or a CSV for "
        "many photos or a folder. --graph is any model the studio wrote (a run folder, "
        "model.keras, model.tflite, or --output_graph's file whatever its name).",
    )
    parser.add_argument(
        "--graph",
        help="model: a run folder, or a TFLite or Keras model file (recognised by its content) or "
        "SavedModel folder (default: tf_files/retrained_graph.pb, as in the codelab)",
    )
    parser.add_argument(
        "--labels",
        help="labels file (default: the labels the model carries, else labels.txt beside it, "
        "else tf_files/retrained_labels.txt)",
    )
    parser.add_argument(
        "--image", action="append", required=True, help="image file or folder; may be repeated"
    )
    parser.add_argument("--top_k", type=int, default=5, help="labels to print per image")
    parser.add_argument("--output_csv", help="write the CSV here instead of stdout")
    parser.add_argument(
        "--no_unknown", action="store_true",
        help="always name a class: do not answer `unknown` for a photo the run's rule rejects",
    )  # fmt: skip
    parser.add_argument(
        "--prefer", choices=("litert", "tensorflow"), default="litert",
        help="for a run folder: the exported TFLite model (LiteRT) or model.keras",
    )  # fmt: skip
    parser.add_argument(
        "--ray",
        help="label many photos on a Ray cluster: `local` (an embedded Ray) or the head's HOST:PORT "
        "(default: in this process, or $RETRAIN_STUDIO_RAY_ADDRESS when set)",
    )
    for name in IGNORED_FLAGS:
        kind = int if name.startswith("input_") and name != "input_layer" else str
        parser.add_argument(f"--{name}", type=kind, help="accepted for label_image.py; not needed")
    parser.set_defaults(func=run_label_image)


def run_label_image(args: argparse.Namespace) -> int:
    """Run `label_image` from parsed arguments.

    One image: `Evaluation time (1-image): 0.018s`, a blank line, then
    `<label> <probability>` lines, best first; when the model's unknown rule
    rejects the photo, a first line `unknown <score>` comes before them all. Many images or a folder: a CSV
    with one row per image; an image that fails is listed with its error and
    the others still work.

    Args:
        args: parsed `label_image` arguments.

    Returns:
        0, or 1 when some images in a batch failed.

    Raises:
        StudioError: bad model, labels or image (printed as one line by the CLI).
    """
    from engine.core.errors import StudioError
    from engine.core.outputs import write_output_bytes
    from engine.core.rundir import RunDir
    from engine.serve.inference import Predictor, image_files
    from engine.serve.model_files import DEFAULT_GRAPH

    if args.top_k < 1:
        raise StudioError(f"--top_k={args.top_k} is not allowed; use 1 or more")
    for name in IGNORED_FLAGS:
        if getattr(args, name) is not None:
            print(
                f"note: --{name} is not needed: the model carries its own input size and "
                "preprocessing, which are used instead",
                file=sys.stderr,
            )
    if args.graph is None and not Path(DEFAULT_GRAPH).exists():
        raise StudioError(
            f"no --graph given and no {DEFAULT_GRAPH} here; pass --graph (a run folder or a model file)"
        )
    graph = Path(args.graph or DEFAULT_GRAPH)
    if graph.is_dir() and RunDir(graph).has_model() and args.labels is None:
        predictor = Predictor.from_run(graph, prefer=args.prefer, unknown=not args.no_unknown)
    else:
        predictor = Predictor.from_files(graph, args.labels, unknown=not args.no_unknown)

    single = len(args.image) == 1 and not Path(args.image[0]).is_dir()
    if single:
        path = Path(args.image[0])
        if not path.is_file():
            raise StudioError(f"--image {str(path)!r} does not exist; give an image file or folder")
        prediction = predictor.predict(str(path), top_k=args.top_k)
        if prediction.unknown:
            print(f"unknown {prediction.unknown_score:.5f}")
        print(f"Evaluation time (1-image): {prediction.seconds:.3f}s")
        print()
        for label, probability in prediction.top_k:
            print(f"{label} {probability:.5f}")
        return 0

    files = image_files(args.image)
    if not files:
        raise StudioError(f"no files found in {args.image}; give image files or a folder of images")
    from engine.core.cluster import resolve_address

    address = resolve_address(args.ray)
    if address is None:
        table = predictor.predict_many([str(f) for f in files], top_k=args.top_k)
    else:
        from engine.serve.distributed import predict_many_ray

        table = predict_many_ray(predictor, [str(f) for f in files], address=address, top_k=args.top_k)
    text = table.to_csv(index=False)
    if args.output_csv:
        write_output_bytes(args.output_csv, text.encode("utf-8"), what="--output_csv")
    else:
        sys.stdout.write(text)
    failed = int(table["error"].notna().sum())
    ok = len(table) - failed
    timed = table["seconds"].dropna()
    mean = f", {timed.mean() * 1000:.1f} ms per image" if len(timed) else ""
    print(f"{ok} labelled, {failed} failed{mean}", file=sys.stderr)
    return 1 if failed else 0
