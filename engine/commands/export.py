"""`python -m engine export`: a finished run's exports, made or re-made on demand.

The same follow-up a training runs after it is done (`engine.train.follow_up`):
model.keras from the head when the run has none yet, then each format asked,
scored on the run's test split and listed in report.json and the model card.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` command.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    from engine.serve.export import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="export a finished run: model.keras, float/int8 TFLite, SavedModel, ONNX",
        description="Write a finished run's model.keras (when it has none yet) and the formats "
        "asked, each scored again on the run's test split (accuracy, size, latency, agreement "
        "with the run's own model) and listed in report.json and MODEL_CARD.md. A format that "
        "fails is reported and the others go on; the run stays usable.",
    )
    parser.add_argument("--run_dir", required=True, help="the run folder (a finished training)")
    parser.add_argument(
        "--formats",
        default="all",
        help=f"comma-separated, from {', '.join(FORMATS)}; or 'all' (default: all)",
    )
    parser.set_defaults(func=run_export)


def parse_formats(text: str) -> tuple[str, ...]:
    """`--formats` as a tuple of format names, in `FORMATS` order.

    Raises:
        StudioError: an unknown name.
    """
    from engine.core.errors import StudioError
    from engine.serve.export import FORMATS

    if text.strip() == "all":
        return FORMATS
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise StudioError(
            f"--formats {text!r} is not allowed; give 'all' or some of {', '.join(FORMATS)}"
        )
    return tuple(name for name in FORMATS if name in names)


def run_export(args: argparse.Namespace) -> int:
    """Run `export` from parsed arguments: 0 when every format was written, 1 when one failed.

    Args:
        args: parsed `export` arguments.

    Returns:
        The exit code.

    Raises:
        StudioError: a missing or unfinished run, or a bad format name.
    """
    import sys
    from pathlib import Path

    from engine.core.errors import StudioError
    from engine.core.progress import TerminalBar
    from engine.core.rundir import RunDir
    from engine.train.follow_up import run_follow_up

    formats = parse_formats(args.formats)
    run = RunDir(Path(args.run_dir))
    if not run.status_path.is_file():
        raise StudioError(
            f"--run_dir {args.run_dir!r} is not a run folder; give a finished run's folder"
        )

    def echo(line: str) -> None:
        print(line, flush=True)

    outcome = run_follow_up(run, formats=formats, progress=TerminalBar(sys.stderr), echo=echo)
    for name, message in outcome["errors"].items():
        print(f"error: {name}: {message}", file=sys.stderr)
    return 1 if outcome["errors"] else 0
