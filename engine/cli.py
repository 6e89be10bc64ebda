"""`python -m engine <command>`: everything the dashboard does, headless.

Each command lives in a module of `engine.commands` that defines
`register(subparsers)`; that function adds its parser and sets `func` to a
callable taking the parsed arguments and returning an exit code. Command
modules import heavy libraries (TensorFlow, LiteRT) inside `func`, so
`--help` stays fast.

Errors the user can fix (`StudioError`) print as one line, `error: ...`, and
exit with code 2; no traceback. Before a command runs, the temporaries an
interrupted process left in the studio's folders are swept
(`engine.core.leftovers`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from engine.core.errors import StudioError, disk_full_error

# Order here is the order of `--help`.
COMMAND_MODULES = (
    "engine.commands.backbones",
    "engine.commands.datasets",
    "engine.commands.retrain",
    "engine.commands.export",
    "engine.commands.sweep",
    "engine.commands.review",
    "engine.commands.label_next",
    "engine.commands.label_image",
    "engine.commands.serve",
    "engine.commands.logs",
    "engine.commands.cluster",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command module's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Retrain Studio engine: inspect data, retrain the last layer of a "
        "pretrained network, label images, read TensorBoard logs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the command.

    Args:
        argv: the arguments, without the program name. Defaults to `sys.argv[1:]`.

    Returns:
        The process exit code: 0 on success, 2 on a user error, or what the command returns.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _sweep()
    try:
        return int(args.func(args) or 0)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        full = disk_full_error(exc)
        if full is None:
            raise
        print(f"error: {full}", file=sys.stderr)
        return full.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _sweep() -> None:
    from engine.core.leftovers import STALE_AFTER_S, sweep_leftovers

    removed = sweep_leftovers()
    if removed:
        print(
            f"note: removed {len(removed)} temporary item(s) older than {STALE_AFTER_S / 3600:g} h "
            "left by an interrupted import, download or write",
            file=sys.stderr,
        )
