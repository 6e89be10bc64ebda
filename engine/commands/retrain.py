"""`python -m engine retrain`: retrain.py's command line, on Retrain Studio's engine.

The flags, their help and defaults come from `TrainConfig`'s fields. A job
started by the dashboard passes only `--run_dir DIR`: the settings are in
that run folder's `request.json`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.core.rundir import RunDir
from engine.train.config import TrainConfig


class DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Shows real defaults in --help; leaves out None and on/off flags, where it says nothing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `retrain` command.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    parser = subparsers.add_parser(
        "retrain",
        help="retrain the last layer of a pretrained network on a folder of photos",
        description="Retrain a softmax layer on a pretrained backbone's features (flag names "
        "as in TensorFlow's retrain.py). Writes a run folder with the model, labels, events, "
        "report and TensorBoard logs.",
        formatter_class=DefaultsShown,
    )
    TrainConfig.add_arguments(parser)
    parser.add_argument(
        "--runs_dir", help="where run folders are created (default: the studio's runs folder)"
    )
    parser.add_argument(
        "--run_dir",
        help="use this already created run folder; its request.json, when present, holds the "
        "settings (how the dashboard starts a training)",
    )
    parser.add_argument("--random_weights", action="store_true", help=argparse.SUPPRESS)  # tests
    parser.set_defaults(func=run_retrain)


def job_settings(
    args: argparse.Namespace,
    cls: type,
    given: RunDir | None,
    *,
    from_args: Callable[[argparse.Namespace], Any] | None = None,
    check: Callable[[Any], Any] | None = None,
    **overrides: Any,
) -> Any:
    """A job's settings: the given folder's request.json if it has one, else the flags; checked.

    A refused request is recorded in the given folder (status `failed` with the
    reason), so the page that started the job can say why it never ran.

    Args:
        args: the parsed flags.
        cls: the settings class (`TrainConfig`, `SweepConfig`).
        given: the job's folder from `--run_dir`, or None.
        from_args: builds the settings from the flags. Defaults to `cls.from_args`.
        check: more checks on the settings (e.g. the output paths). Defaults to None.
        **overrides: fields set regardless of the flags (e.g. `weights=None`).

    Returns:
        The validated settings.

    Raises:
        StudioError: a bad setting, a damaged request, or an image folder that is not one.
    """
    from engine.core.errors import StudioError

    try:
        request = given.read_request() if given is not None else None
        if request is not None:
            config = cls.from_dict(request)
        elif from_args is not None:
            config = from_args(args)
        else:
            config = cls.from_args(args, **overrides)
        config.validate()
        if check is not None:
            check(config)
        if config.image_dir is not None and not Path(config.image_dir).is_dir():
            raise StudioError(
                f"--image_dir {config.image_dir!r} is not a folder; give a folder with one "
                "sub-folder of images per class"
            )
    except StudioError as exc:
        if given is not None:
            # the job runner's folder must say why it never started
            given.write_status("failed", error=str(exc), job=cls.job_command)
        raise
    return config


QUANTIZED_SUFFIX = "_quantized"


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` the parsed flags describe.

    retrain.py's `--architecture mobilenet_<width>_<size>_quantized` names a
    quantized graph; here the float network is trained and `--export` writes
    an int8 TFLite model beside it, so the suffix is dropped with a note.

    Args:
        args: parsed `retrain` arguments.

    Returns:
        The settings.
    """
    overrides: dict[str, object] = {"weights": None if args.random_weights else "imagenet"}
    name = args.architecture
    if isinstance(name, str) and name.endswith(QUANTIZED_SUFFIX):
        overrides["architecture"] = name.removesuffix(QUANTIZED_SUFFIX)
        print(
            f"note: --architecture={name}: the float {overrides['architecture']} is trained; "
            "add --export for an int8 TFLite model (the quantized one)",
            file=sys.stderr,
        )
    return TrainConfig.from_args(args, **overrides)


def run_retrain(args: argparse.Namespace) -> int:
    """Run `retrain` from parsed arguments; 0 when done, 3 when cancelled.

    Args:
        args: parsed `retrain` arguments.

    Returns:
        The exit code.

    Raises:
        StudioError: bad flags or data (printed as one line by the CLI).
    """
    from engine.api import retrain
    from engine.core.errors import StudioError
    from engine.core.progress import TerminalBar
    from engine.core.rundir import RunDir
    from engine.train.output_flags import check_outputs

    given = RunDir(args.run_dir) if args.run_dir else None
    if given is not None and not given.path.is_dir():
        raise StudioError(f"--run_dir {args.run_dir!r} does not exist; create it or drop the flag")
    # the output paths are checked before a run folder is made for a training that cannot finish
    config = job_settings(args, TrainConfig, given, from_args=config_from_args, check=check_outputs)
    run = given if given is not None else RunDir.create(args.runs_dir, backbone=config.job_folder_name())

    def echo(line: str) -> None:
        print(line, flush=True)

    print(f"Run folder: {run.path}", flush=True)
    result = retrain(config, run_dir=run.path, progress=TerminalBar(sys.stderr), echo=echo)
    return 3 if result.cancelled else 0
