"""`python -m engine retrain`: retrain.py's command line, on Retrain Studio's engine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.training import CLASS_WEIGHTS, LR_SCHEDULES, RUNTIMES, TrainConfig

_DEFAULTS = TrainConfig()


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
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
        formatter_class=_DefaultsShown,
    )
    add = parser.add_argument
    add("--image_dir", help="folder with one sub-folder of images per class (default: the demo set)")
    add("--architecture", help="backbone name (see `python -m engine backbones`)")
    add("--image_size", type=int, help="input side, one of the backbone's sizes")
    add("--output_graph", help="also copy the trained model (.keras) here")
    add("--output_labels", help="also copy labels.txt here")
    add("--summaries_dir", help="also copy the TensorBoard logs to DIR/<run_id>")
    add("--bottleneck_dir", help="folder for the bottleneck cache")
    add("--runs_dir", help="where run folders are created (default: the studio's runs folder)")
    add("--run_dir", help="use this already created run folder (the job runner passes it)")
    add("--how_many_training_steps", type=int, default=_DEFAULTS.how_many_training_steps,
        help="training steps; each step uses one random batch of --train_batch_size photos")  # fmt: skip
    add("--epochs", type=float, help="train this many passes over the training split instead")
    add("--learning_rate", type=float, default=_DEFAULTS.learning_rate,
        help="gradient descent step size for the new layer")  # fmt: skip
    add("--lr_schedule", choices=LR_SCHEDULES, default=_DEFAULTS.lr_schedule,
        help="constant, or cosine decay to 0 over the run")  # fmt: skip
    add("--testing_percentage", type=int, default=_DEFAULTS.testing_percentage,
        help="share of each class held out for the final test")  # fmt: skip
    add("--validation_percentage", type=int, default=_DEFAULTS.validation_percentage,
        help="share of each class used for validation during training")  # fmt: skip
    add("--eval_step_interval", type=int, default=_DEFAULTS.eval_step_interval,
        help="validate every this many steps")  # fmt: skip
    add("--train_batch_size", type=int, default=_DEFAULTS.train_batch_size,
        help="photos per training step")  # fmt: skip
    add("--test_batch_size", type=int, default=_DEFAULTS.test_batch_size, help="-1 = all")
    add("--validation_batch_size", type=int, default=_DEFAULTS.validation_batch_size, help="-1 = all")
    add("--dropout", type=float, default=_DEFAULTS.dropout,
        help="dropout rate before the new layer (0 = none)")  # fmt: skip
    add("--class_weights", choices=CLASS_WEIGHTS, default=_DEFAULTS.class_weights,
        help="balanced weighs rare classes up, for imbalanced data")  # fmt: skip
    add("--print_misclassified_test_images", action="store_true",
        help="list every test photo the model got wrong")  # fmt: skip
    add("--flip_left_right", action="store_true",
        help="augment: mirror half the photos (bypasses the bottleneck cache: slower)")  # fmt: skip
    add("--random_crop", type=int, default=0, help="augment: crop margin, percent")
    add("--random_scale", type=int, default=0, help="augment: scale change, percent")
    add("--random_brightness", type=int, default=0, help="augment: brightness change, percent")
    add("--fine_tune_blocks", type=int, default=0, help="unfreeze the last N backbone blocks")
    add("--fine_tune_learning_rate", type=float, default=_DEFAULTS.fine_tune_learning_rate,
        help="step size for the unfrozen backbone blocks (keep it low)")  # fmt: skip
    add("--seed", type=int, help="makes the run reproducible")
    add("--runtime", choices=RUNTIMES, default=_DEFAULTS.runtime,
        help="feature runtime to prefer (tensorflow also decodes with tf.data)")  # fmt: skip
    add("--random_weights", action="store_true", help=argparse.SUPPRESS)  # tests only
    add("--export", action="store_true",
        help="also export SavedModel and int8 TFLite (float TFLite is always written)")  # fmt: skip
    parser.set_defaults(func=run_retrain)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` the parsed flags describe.

    Args:
        args: parsed `retrain` arguments.

    Returns:
        The settings.
    """
    names = {f for f in TrainConfig.__dataclass_fields__ if f != "weights"}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values["weights"] = None if args.random_weights else "imagenet"
    return TrainConfig(**values)


def run_retrain(args: argparse.Namespace) -> int:
    """Run `retrain` from parsed arguments; 0 when done, 3 when cancelled.

    Args:
        args: parsed `retrain` arguments.

    Returns:
        The exit code.

    Raises:
        StudioError: bad flags or data (printed as one line by the CLI).
    """
    from engine import backbones
    from engine.errors import StudioError
    from engine.progress import TerminalBar
    from engine.runs import RunDir
    from engine.training import retrain

    given = RunDir(args.run_dir) if args.run_dir else None
    if given is not None and not given.path.is_dir():
        raise StudioError(f"--run_dir {args.run_dir!r} does not exist; create it or drop the flag")
    try:
        config = config_from_args(args)
        config.validate()
        name = backbones.get_backbone(config.architecture or backbones.DEFAULT_BACKBONE).name
        if config.image_dir is not None and not Path(config.image_dir).is_dir():
            raise StudioError(
                f"--image_dir {config.image_dir!r} is not a folder; give a folder with one "
                "sub-folder of images per class"
            )
    except StudioError as exc:
        if given is not None:
            # the job runner's run folder must say why it never started
            given.write_status("failed", error=str(exc))
        raise
    run = given if given is not None else RunDir.create(args.runs_dir, backbone=name)

    def echo(line: str) -> None:
        print(line, flush=True)

    print(f"Run folder: {run.path}", flush=True)
    result = retrain(config, run, progress=TerminalBar(sys.stderr), echo=echo)
    return 3 if result.get("cancelled") else 0
