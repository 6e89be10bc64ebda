"""CLI: `inspect-logs`, `tensorboard` and `runs`.

- `python -m engine inspect-logs --logdir DIR`: runs, tags and step ranges,
  as `tensorboard --inspect` prints them.
- `python -m engine tensorboard [--logdir DIR] [--port P] [--stop]`: start
  TensorBoard (or reuse the one already serving DIR) and print its URL; it
  keeps running after the command returns.
- `python -m engine runs [--runs_dir DIR] [--delete RUN_ID]`: list runs,
  newest first, or delete one.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.commands.table import format_table
from engine.core.progress import format_duration


def register(subparsers: Any) -> None:
    """Add the `inspect-logs`, `tensorboard` and `runs` commands."""
    inspect = subparsers.add_parser(
        "inspect-logs",
        help="list the runs, tags and step ranges of TensorBoard event files",
        description="List the runs, tags and step ranges of TensorBoard event files "
        "(what `tensorboard --inspect` prints).",
    )
    inspect.add_argument("--logdir", required=True, help="a run's tb/ folder, or the runs folder")
    inspect.set_defaults(func=_inspect_logs)

    board = subparsers.add_parser(
        "tensorboard",
        help="start TensorBoard (or reuse a running one) and print its URL",
        description="Start TensorBoard on 127.0.0.1, or reuse the one already serving the "
        "folder, and print its URL. It keeps running after this command returns.",
    )
    board.add_argument("--logdir", default=None, help="the folder to serve (default: the runs folder)")
    board.add_argument("--port", type=int, default=None, help="a port wish; a busy one is replaced")
    board.add_argument("--stop", action="store_true", help="stop the TensorBoard serving --logdir")
    board.set_defaults(func=_tensorboard)

    runs = subparsers.add_parser(
        "runs",
        help="list training runs, newest first, or delete one",
        description="List training runs, newest first, or delete one with --delete.",
    )
    runs.add_argument("--runs_dir", default=None, help="the runs folder (default: the studio's)")
    runs.add_argument("--delete", metavar="RUN_ID", default=None, help="delete this run's folder")
    runs.set_defaults(func=_runs)


def _inspect_logs(args: argparse.Namespace) -> int:
    from engine.runs.event_files import inspect_logs

    tags = inspect_logs(args.logdir)
    if not tags:
        print(f"No TensorBoard event files under {args.logdir}.")
        return 0
    by_run: dict[str, list[Any]] = {}
    for info in tags:
        by_run.setdefault(info.run, []).append(info)
    print(f"Event files under {args.logdir}: {len(by_run)} run(s)")
    width = max(len(info.tag) for info in tags)
    for run, infos in by_run.items():
        print(f"\nrun: {run}")
        for info in infos:
            steps = (
                f"step {info.first_step}"
                if info.first_step == info.last_step
                else (f"steps {info.first_step}..{info.last_step}")
            )
            print(f"  {info.kind:<12} {info.tag:<{width}}  {info.count:>6} events  {steps}")
    return 0


def _tensorboard(args: argparse.Namespace) -> int:
    from engine.core.paths import runs_dir
    from engine.runs.tensorboard import start_tensorboard, stop_tensorboard

    logdir = args.logdir if args.logdir is not None else runs_dir()
    if args.stop:
        stopped = stop_tensorboard(logdir)
        print(
            f"Stopped TensorBoard on {logdir}." if stopped else f"No TensorBoard was serving {logdir}."
        )
        return 0
    if args.logdir is None:
        logdir.mkdir(parents=True, exist_ok=True)  # a fresh studio has no runs folder yet
    board = start_tensorboard(logdir, port=args.port)
    if board.notice:
        print(f"note: {board.notice}")
    how = "Reusing" if board.reused else "Started"
    print(f"{how} TensorBoard (pid {board.pid}) on {board.logdir}")
    print(board.url)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from engine.core.paths import runs_dir
    from engine.runs.listing import delete_run, list_runs

    folder = args.runs_dir if args.runs_dir is not None else runs_dir()
    if args.delete is not None:
        path = delete_run(args.delete, folder)
        print(f"Deleted run {args.delete} ({path}).")
        return 0
    summaries = list_runs(folder)
    if not summaries:
        print(f"No runs in {folder}.")
        return 0
    rows = [
        (
            s.run_id,
            s.status,
            s.architecture,
            "-" if s.test_accuracy is None else f"{s.test_accuracy * 100:.1f}%",
            "-" if s.steps is None else str(s.steps),
            format_duration(s.duration_s),
            s.dataset or "-",
        )
        for s in summaries
    ]
    header = ("RUN", "STATUS", "ARCHITECTURE", "TEST ACC", "STEPS", "TIME", "DATASET")
    print(format_table([header, *rows]))
    for s in summaries:
        if s.status == "failed" and s.error:
            print(f"\n{s.run_id} failed: {s.error}")
    return 0
