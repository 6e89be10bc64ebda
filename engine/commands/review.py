"""`python -m engine review`: what is wrong with a dataset's photos, headless.

Prints the label issues, near-duplicates, split leaks and outliers
(`engine.train.review`) with how much the leaks inflate test accuracy, and
writes them as CSV with `--output_csv`. `--fix_leaks` renames each leaking
group so it stays in one split (journaled; `undo` it from the Dataset page).
"""

from __future__ import annotations

import argparse
import sys

# Rows of each kind printed (the CSV has them all).
SHOWN = 10


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `review` command.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    from engine.train.review.near_duplicates import CONFIRM_SSIM, FEATURE_RADIUS

    parser = subparsers.add_parser(
        "review",
        help="find mislabelled photos, near-duplicates, split leaks and outliers",
        description="Review a folder-per-class dataset from its cached features: label issues "
        "(cleanlab on out-of-fold probabilities), near-duplicates and the split leaks they make, "
        "outliers. Near-duplicates come from two signals, each pair confirmed by SSIM at the "
        "smaller photo's size: perceptual hashes (a 256-bit DCT hash per photo, cached) and the "
        "backbone's features (mutual nearest neighbours within a share of the median neighbour "
        "distance). Features come from the bottleneck cache a training fills; missing ones are "
        "computed once. The result is kept with the dataset and reused until a photo changes. "
        "A top-level unsorted/ folder is not a class (see label-next).",
    )
    parser.add_argument(
        "--image_dir", required=True, help="the dataset folder (one sub-folder per class)"
    )
    parser.add_argument(
        "--output_csv", help="write every finding here as CSV (path relative to --image_dir)"
    )
    parser.add_argument(
        "--architecture", help="backbone whose features are used (default: the studio's)"
    )
    parser.add_argument("--bottleneck_dir", help="feature cache folder (default: the studio's cache)")
    parser.add_argument("--validation_percentage", type=float, default=10, help="as for retrain")
    parser.add_argument("--testing_percentage", type=float, default=10, help="as for retrain")
    parser.add_argument(
        "--duplicate_ssim", type=float, default=CONFIRM_SSIM,
        help=f"SSIM a near-duplicate pair needs, in (0, 1] (default {CONFIRM_SSIM})",
    )  # fmt: skip
    parser.add_argument(
        "--duplicate_radius", type=float, default=FEATURE_RADIUS,
        help="feature neighbours nearer than this share of the median nearest-neighbour "
        f"distance are candidates, in (0, 1] (default {FEATURE_RADIUS})",
    )  # fmt: skip
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="review again even if no photo changed since the last review",
    )
    parser.add_argument(
        "--fix_leaks", action="store_true",
        help="rename each leaking group's photos so the group stays in one split (undoable)",
    )  # fmt: skip
    parser.set_defaults(func=run_review)


def run_review(args: argparse.Namespace) -> int:
    """Run `review` from parsed arguments; return 0."""
    from engine.commands.table import format_table
    from engine.core.errors import StudioError
    from engine.core.progress import TerminalBar
    from engine.train.review import KINDS, fix_leaks, review_dataset, write_csv

    for flag in ("duplicate_ssim", "duplicate_radius"):
        value = getattr(args, flag)
        if not 0 < value <= 1:
            raise StudioError(f"--{flag}={value} is out of range; use a number in (0, 1]")
    review = review_dataset(
        args.image_dir,
        architecture=args.architecture,
        validation_percentage=args.validation_percentage,
        testing_percentage=args.testing_percentage,
        min_ssim=args.duplicate_ssim,
        radius=args.duplicate_radius,
        reuse=not args.fresh,
        bottleneck_dir=args.bottleneck_dir,
        progress=TerminalBar(sys.stderr),
    )
    counts = review.counts()
    print(f"Reviewed {review.image_count} photos: " + ", ".join(f"{counts[k]} {k}" for k in KINDS))
    if not review.seconds:
        print("(the kept review: no photo changed since it was made; --fresh reviews again)")
    for path, reason in review.skipped:
        print(f"skipped {path}: {reason}")
    for kind in KINDS:
        rows = review.of_kind(kind)
        if not rows:
            continue
        print(f"\n{kind} ({len(rows)}{', first ' + str(SHOWN) if len(rows) > SHOWN else ''}):")
        table = [("score", "path", "given", "suggested", "group", "split")]
        table += [
            (f"{f.score:.3f}", f.path, f.given_label, f.suggested_label, str(f.group or ""), f.split)
            for f in rows[:SHOWN]
        ]
        print(format_table(table, rule=True, indent="  "))
    leak = review.leak
    if leak.get("leaked_test_photos"):
        with_leak, without = leak["test_accuracy"], leak["test_accuracy_without_leaks"]
        print(
            f"\nsplit leaks: {leak['leaked_test_photos']} of {leak['test_photos']} test photos have a "
            f"near-copy in train; test accuracy {with_leak:.1%} with them, "
            + (f"{without:.1%} without" if without is not None else "no test photo left without")
        )
    if args.fix_leaks:
        edit = fix_leaks(args.image_dir, review)
        print(
            f"\nfixed the leaks: {len(edit.moves)} photo(s) renamed (edit {edit.id})"
            if edit
            else "\nno leak to fix"
        )
    if args.output_csv:
        print(f"\nwrote {write_csv(review, args.output_csv)}")
    return 0
