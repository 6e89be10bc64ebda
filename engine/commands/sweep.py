"""`python -m engine sweep`: a leaderboard of backbones (and sizes) on one dataset.

The flags, their help and defaults come from `SweepConfig`'s fields. A job
started by the dashboard passes only `--run_dir DIR`: the settings are in
that folder's `request.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.commands.retrain import DefaultsShown, job_settings
from engine.core.rundir import RunDir
from engine.train.sweep_config import SweepConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sweep` command.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    parser = subparsers.add_parser(
        "sweep",
        help="compare backbones (each at every input size) on a dataset: a leaderboard",
        description="Score every chosen backbone whose weights are on this machine, at each input "
        "size it offers, on one dataset and split: features from the bottleneck cache, the "
        "L-BFGS head, then test accuracy, macro-F1, the float model's size and LiteRT latency; "
        "nothing is exported. Prints the table and writes leaderboard.csv. --export makes one "
        "candidate a full run with every export and fills in its int8 columns.",
        formatter_class=DefaultsShown,
    )
    SweepConfig.add_arguments(parser)
    parser.add_argument(
        "--output_dir",
        help="the folder for leaderboard.csv (and the sweep's status, events and config); new or "
        "empty (default: a new <stamp>-sweep folder in the runs folder)",
    )
    parser.add_argument("--runs_dir", help="where a new sweep folder is created (default: the studio's)")
    parser.add_argument(
        "--run_dir",
        help="use this already created folder; its request.json holds the settings (how the "
        "dashboard starts a sweep)",
    )
    parser.add_argument(
        "--export",
        nargs="?",
        const="best",
        metavar="CANDIDATE",
        help="after scoring, train CANDIDATE (default: the best) as a full run with every export "
        "(model.keras, SavedModel, float and int8 TFLite, ONNX) and fill in its int8 columns",
    )
    parser.add_argument("--random_weights", action="store_true", help=argparse.SUPPRESS)  # tests
    parser.set_defaults(func=run_sweep_command)


def _folder(args: argparse.Namespace) -> tuple[RunDir | None, bool]:
    """The sweep's folder (None: make one in the runs folder), and whether `--run_dir` gave it."""
    from engine.core.errors import StudioError

    if args.run_dir:
        given = RunDir(args.run_dir)
        if not given.path.is_dir():
            raise StudioError(f"--run_dir {args.run_dir!r} does not exist; create it or drop the flag")
        return given, True
    if args.output_dir:
        folder = Path(args.output_dir).expanduser()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise StudioError(
                f"--output_dir {args.output_dir!r} is not an empty folder; give a new or empty one "
                "(nothing in it was changed)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        return RunDir(folder), False
    return None, False


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run `sweep` from parsed arguments; 0 when done, 3 when cancelled.

    Args:
        args: parsed `sweep` arguments.

    Returns:
        The exit code.

    Raises:
        StudioError: bad flags or data (printed as one line by the CLI).
    """
    from engine.commands.table import format_table
    from engine.core.progress import TerminalBar
    from engine.train.sweep import (
        LEADERBOARD_CSV,
        export_candidate_run,
        format_leaderboard,
        read_leaderboard,
        run_sweep,
    )

    folder, given = _folder(args)
    config = job_settings(
        args, SweepConfig, folder if given else None, weights=None if args.random_weights else "imagenet"
    )
    run = (
        folder if folder is not None else RunDir.create(args.runs_dir, backbone=config.job_folder_name())
    )

    def echo(line: str) -> None:
        print(line, flush=True)

    print(f"Sweep folder: {run.path}", flush=True)
    result = run_sweep(config, run, progress=TerminalBar(sys.stderr), echo=echo)
    if args.export and not result.get("cancelled"):
        full = export_candidate_run(run, args.export, progress=TerminalBar(sys.stderr), echo=echo)
        print(f"Full run with every export: {full.path}", flush=True)
        result = read_leaderboard(run)
    print(format_table(format_leaderboard(result["rows"]), right_align_from=1, rule=True))
    for row in result["rows"]:
        if row.get("error"):
            print(f"{row['candidate']} failed: {row['error']}")
    print(f"Leaderboard: {run.path / LEADERBOARD_CSV}")
    return 3 if result.get("cancelled") else 0
