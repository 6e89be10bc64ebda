"""`python -m engine label-next`: which unsorted photos to label first, and as what.

Ranks the photos of the dataset's `unsorted/` folder (or `--unsorted_dir`)
with cleanlab's ActiveLab on a head fitted to the labelled photos' cached
features (`engine.train.review.label_next`), prints the first ones and
writes them all as CSV. `--file PATH=CLASS` files photos into classes
through the journaled, undoable edits (moved when the folder is inside the
dataset, copied when it is outside); `--measure_curve` measures how fast
test accuracy rises in this order against random order on the dataset's own
labelled photos.
"""

from __future__ import annotations

import argparse
import sys

SHOWN = 15


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `label-next` command.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    parser = subparsers.add_parser(
        "label-next",
        help="rank the unsorted photos: which to label first (cleanlab ActiveLab), with a suggested class",
        description="Rank the photos of the dataset's unsorted/ folder (a top-level folder named "
        "unsorted is never a class: the scan, the split and training leave it out) or of "
        "--unsorted_dir: the photo the model fitted to the labelled photos is least sure of "
        "comes first (cleanlab's ActiveLab score, lower = label sooner), each with the class the "
        "model suggests. Features come from the bottleneck cache; missing ones are computed once.",
    )
    parser.add_argument(
        "--image_dir", required=True, help="the dataset folder (one sub-folder per class)"
    )
    parser.add_argument(
        "--unsorted_dir",
        help="folder of photos to label (default: IMAGE_DIR/unsorted); outside the dataset, "
        "filed photos are copied in, never moved",
    )
    parser.add_argument("--output_csv", help="write the ranking here as CSV (rank, path, score, ...)")
    parser.add_argument(
        "--architecture", help="backbone whose features are used (default: the studio's)"
    )
    parser.add_argument("--bottleneck_dir", help="feature cache folder (default: the studio's cache)")
    parser.add_argument(
        "--file", action="append", default=[], metavar="PATH=CLASS",
        help="file an unsorted photo (its path as listed) into a class folder; journaled and "
        "undoable; may be given several times",
    )  # fmt: skip
    parser.add_argument(
        "--measure_curve", action="store_true",
        help="measure test accuracy against photos labelled in this order and in random order, "
        "on the dataset's labelled photos",
    )  # fmt: skip
    parser.set_defaults(func=run_label_next)


def run_label_next(args: argparse.Namespace) -> int:
    """Run `label-next` from parsed arguments; return 0."""
    from engine.commands.table import format_table
    from engine.core.progress import TerminalBar
    from engine.train.review.label_next import label_next, write_csv

    bar = TerminalBar(sys.stderr)
    result = label_next(
        args.image_dir,
        unsorted_dir=args.unsorted_dir,
        architecture=args.architecture,
        bottleneck_dir=args.bottleneck_dir,
        progress=bar,
    )
    count = len(result.suggestions)
    print(
        f"{count} unsorted photo(s) in {result.folder} ranked by {result.method}, from "
        f"{result.labelled} labelled photos of {len(result.labels)} classes"
        + (
            f"; {result.already_filed} already filed (same bytes in a class) left out"
            if result.already_filed
            else ""
        )
    )
    for path, reason in result.skipped:
        print(f"skipped {path}: {reason}")
    if count:
        table = [("rank", "score", "path", "suggested", "confidence")]
        table += [
            (str(s.rank), f"{s.score:.3f}", s.path, s.suggested_folder, f"{s.confidence:.0%}")
            for s in result.suggestions[:SHOWN]
        ]
        print(format_table(table, rule=True, indent="  "))
        if count > SHOWN:
            print(f"  ... and {count - SHOWN} more")
    elif not args.file:
        print(f"nothing to label: put photos in {result.folder} (it is not a class)")
    if args.file:
        _file(args, result)
    if args.output_csv:
        print(f"wrote {write_csv(result, args.output_csv)}")
    if args.measure_curve:
        _curve(args, bar)
    return 0


def _file(args: argparse.Namespace, result: object) -> None:
    from engine.core.errors import StudioError
    from engine.data.unsorted import file_unsorted

    pairs = []
    for item in args.file:
        path, sep, target = item.rpartition("=")
        if not sep or not path or not target:
            raise StudioError(
                f"--file {item!r} is not PATH=CLASS; give a path as listed, then = and a class"
            )
        pairs.append((path, target))
    for path, target in pairs:
        edit = file_unsorted(args.image_dir, [path], target, folder=args.unsorted_dir)
        print(f"filed {path} as {target} (edit {edit.id}; undo it on the Dataset page)")


def _curve(args: argparse.Namespace, bar: object) -> None:
    from engine.train.review.label_next import measure_on_dataset

    curve = measure_on_dataset(
        args.image_dir, architecture=args.architecture, bottleneck_dir=args.bottleneck_dir, progress=bar
    )
    print(f"\nlabelled   ActiveLab   random   (test accuracy, {curve['test_photos']} test photos)")
    for n, a, r in zip(curve["labelled"], curve["activelab"], curve["random"], strict=True):
        print(f"{n:8}   {a:8.1%}   {r:7.1%}")
