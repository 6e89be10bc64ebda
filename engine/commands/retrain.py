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
    # Marked defaults: small_cnn tells a step count left at retrain.py's default from one given.
    parser.set_defaults(
        **{
            name: _Default(TrainConfig.default(name))
            for name in ("how_many_training_steps", "train_batch_size")
        }
    )
    parser.epilog = (
        "With --architecture small_cnn (trained from scratch) and neither --how_many_training_steps "
        "nor --epochs, the Train page's recipe is used instead of retrain.py's 4,000 steps of 100 "
        f"photos: {_scratch_recipe_text()}."
    )
    parser.add_argument(
        "--runs_dir", help="where run folders are created (default: the studio's runs folder)"
    )
    parser.add_argument(
        "--run_dir",
        help="use this already created run folder; its request.json, when present, holds the "
        "settings (how the dashboard starts a training)",
    )
    parser.add_argument(
        "--defer_exports",
        action="store_true",
        help="end when the run is done and usable (its export/model.tflite, on LiteRT); leave "
        "model.keras and the --export formats to a later `python -m engine export --run_dir RUN` "
        "(by default they are made right after, in this process)",
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


class _Default(int):
    """An int flag's default, told apart from the same number given on the command line."""


def _scratch_recipe_text() -> str:
    from engine.models.scratch import FORM_DEFAULTS

    return (
        f"{FORM_DEFAULTS['how_many_training_steps']} steps of {FORM_DEFAULTS['train_batch_size']} "
        "photos (about 60 epochs of the demo, a minute or two on 2 cores)"
    )


def _scratch_recipe(args: argparse.Namespace, architecture: str) -> dict[str, object]:
    """The Train page's from-scratch recipe, when small_cnn is asked for with no step count or epochs."""
    from engine.models.registry import get_backbone
    from engine.models.scratch import FORM_DEFAULTS

    try:
        pretrained = get_backbone(architecture).pretrained
    except Exception:  # noqa: BLE001 - an unknown name is refused by validate() with its own message
        return {}
    if pretrained or args.epochs is not None or type(args.how_many_training_steps) is not _Default:
        return {}
    recipe: dict[str, object] = {"how_many_training_steps": FORM_DEFAULTS["how_many_training_steps"]}
    if type(args.train_batch_size) is _Default:
        recipe["train_batch_size"] = FORM_DEFAULTS["train_batch_size"]
    print(
        f"note: --architecture={architecture} trains from scratch: using the Train page's recipe, "
        f"{recipe['how_many_training_steps']} steps of {recipe.get('train_batch_size', args.train_batch_size)} "
        "photos (give --how_many_training_steps or --epochs to choose)",
        file=sys.stderr,
    )
    return recipe


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
    if isinstance(name, str):
        overrides.update(_scratch_recipe(args, str(overrides.get("architecture", name))))
    config = TrainConfig.from_args(args, **overrides)
    # plain ints from here on: the marks only tell defaults apart while the flags are read
    return config.replace(
        how_many_training_steps=int(config.how_many_training_steps),
        train_batch_size=int(config.train_batch_size),
    )


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
    result = retrain(
        config, run_dir=run.path, progress=TerminalBar(sys.stderr), echo=echo,
        exports="later" if args.defer_exports else "now",
        # retrain.py's stdout ends with `Final test accuracy`: the exports' figures go beside the bars
        note=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    return 3 if result.cancelled else 0
