"""TrainConfig: every setting of a retraining run, written once.

Each field carries its help text and its limits in its metadata (a
`Setting`); the `retrain` command's flags (names and defaults as in
retrain.py), the Train page's form limits and `TrainConfig.validate` are all
built from that metadata, so they cannot drift apart.

A TrainConfig travels as it is: the Train page builds one and validates it,
`JobRegistry.start` writes it into the run folder as `request.json`, and the
trainer process reads it back (`TrainConfig.from_dict`). `resolved()` fills in
what "default" means for a run (the demo dataset, the default backbone and its
input size, a random seed) and returns a new object; nothing changes a
config in place.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.core.errors import StudioError
from engine.core.progress import ProgressCallback
from engine.models.runtime import RUNTIMES

LR_SCHEDULES = ("constant", "cosine")
HEAD_FITS = ("lbfgs", "sgd")
CLASS_WEIGHTS = ("none", "balanced")
WEIGHTS = ("imagenet", None)
SEED_MAX = 2**31 - 1
# Fields that name files or folders, never hyperparameters (left out of TensorBoard's hparams).
PATH_FIELDS = (
    "image_dir",
    "bottleneck_dir",
    "summaries_dir",
    "output_graph",
    "output_labels",
    "model_dir",
    "intermediate_output_graphs_dir",
)


@dataclass(frozen=True)
class Setting:
    """What a TrainConfig field means and which values it takes.

    Attributes:
        help: one line for `--help` and the form's tooltip.
        low: the smallest allowed value (numbers). Defaults to None.
        high: the largest allowed value (numbers). Defaults to None.
        choices: the allowed values (text). Defaults to None.
        also: values allowed outside `low..high` (e.g. -1 for "all"). Defaults to ().
        flag: whether `retrain` has a flag for it. Defaults to True.
    """

    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    also: tuple[Any, ...] = ()
    flag: bool = True

    def allowed(self) -> str:
        """The rule in words, for error messages."""
        if self.choices is not None:
            return "choose one of " + ", ".join(str(c) for c in self.choices)
        parts = []
        if self.low is not None and self.high is not None:
            parts.append(f"use {self.low:g} to {self.high:g}")
        elif self.low is not None:
            parts.append(f"use {self.low:g} or more")
        elif self.high is not None:
            parts.append(f"use at most {self.high:g}")
        if self.also:
            parts.append("or " + " or ".join(str(v) for v in self.also))
        return " ".join(parts) or "see --help"

    def accepts(self, value: Any) -> bool:
        """Whether `value` keeps to this setting's limits (types are checked elsewhere)."""
        if value in self.also:
            return True
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                return False
            if self.low is not None and value < self.low:
                return False
            if self.high is not None and value > self.high:
                return False
        return True


def _setting(default: Any, help: str, **limits: Any) -> Any:
    return field(default=default, metadata={"setting": Setting(help, **limits)})


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a retraining run; names and defaults follow retrain.py.

    Each field's help and limits are in its metadata (`TrainConfig.setting(name)`);
    `python -m engine retrain --help` prints them.
    """

    image_dir: str | None = _setting(
        None, "folder with one sub-folder of images per class (default: the generated demo set)"
    )
    architecture: str | None = _setting(
        None, "backbone name (see `python -m engine backbones`; default efficientnet_lite0)"
    )
    image_size: int | None = _setting(
        None, "input side, one of the backbone's sizes (default: the backbone's own)", low=8, high=1024
    )
    head_fit: str = _setting(
        "lbfgs",
        "how the new layer is fitted. lbfgs: full-batch L-BFGS softmax regression on the cached "
        "features, run to convergence with the L2 strength chosen on the validation split (a step "
        "is an iteration, at most --how_many_training_steps; learning rate, batch size, epochs and "
        "dropout are not used). sgd: retrain.py's loop of random batches. Augmentation and "
        "fine-tuning need images at every step, so they always use sgd",
        choices=HEAD_FITS,
    )
    how_many_training_steps: int = _setting(
        4000, "training steps; with sgd each step uses one random batch of --train_batch_size "
        "photos, with lbfgs it caps the iterations of each fit",
        low=1, high=1_000_000,
    )  # fmt: skip
    epochs: float | None = _setting(
        None, "train this many passes over the training split instead of a step count",
        low=0.01, high=10_000,
    )  # fmt: skip
    learning_rate: float = _setting(
        0.01, "gradient descent step size for the new layer", low=1e-7, high=10.0
    )
    lr_schedule: str = _setting(
        "constant", "constant, or cosine decay to 0 over the run", choices=LR_SCHEDULES
    )
    testing_percentage: int = _setting(
        10, "share of each class held out for the final test", low=0, high=90
    )
    validation_percentage: int = _setting(
        10, "share of each class used for validation during training", low=0, high=90
    )
    eval_step_interval: int = _setting(10, "validate every this many steps", low=1, high=1_000_000)
    train_batch_size: int = _setting(100, "photos per training step", low=1, high=100_000)
    test_batch_size: int = _setting(
        -1, "test photos scored at the end; -1 = all", low=1, high=10_000_000, also=(-1,)
    )
    validation_batch_size: int = _setting(
        100, "validation photos per evaluation; -1 = all", low=1, high=10_000_000, also=(-1,)
    )
    dropout: float = _setting(0.0, "dropout rate before the new layer (0 = none)", low=0.0, high=0.95)
    class_weights: str = _setting(
        "none", "balanced weighs rare classes up, for imbalanced data", choices=CLASS_WEIGHTS
    )
    flip_left_right: bool = _setting(
        False, "augment: mirror half the photos (bypasses the bottleneck cache: slower)"
    )
    random_crop: int = _setting(0, "augment: crop margin, percent", low=0, high=100)
    random_scale: int = _setting(0, "augment: scale change, percent", low=0, high=100)
    random_brightness: int = _setting(0, "augment: brightness change, percent", low=0, high=100)
    fine_tune_blocks: int = _setting(0, "unfreeze the last N backbone blocks", low=0, high=100)
    fine_tune_learning_rate: float = _setting(
        1e-4, "step size for the unfrozen backbone blocks (keep it low)", low=1e-9, high=1.0
    )
    seed: int | None = _setting(
        None, "makes the run reproducible (default: a random seed)", low=0, high=SEED_MAX
    )
    bottleneck_dir: str | None = _setting(None, "folder for the bottleneck cache")
    summaries_dir: str | None = _setting(None, "also copy the TensorBoard logs to DIR/<run_id>")
    output_graph: str | None = _setting(
        None, "also write the trained model here (a .keras zip whatever the name; it carries its labels)"
    )
    output_labels: str | None = _setting(None, "also write labels.txt here")
    model_dir: str | None = _setting(
        None, "where pretrained weights are looked for and kept, before the studio's cache"
    )
    intermediate_output_graphs_dir: str | None = _setting(
        None, "where --intermediate_store_frequency saves models (default: <run>/intermediate)"
    )
    intermediate_store_frequency: int = _setting(
        0, "save the model every this many steps (0 = never)", low=0, high=1_000_000
    )
    final_tensor_name: str | None = _setting(
        None, "name of the model's output (softmax) layer (default: probabilities)"
    )
    print_misclassified_test_images: bool = _setting(False, "list every test photo the model got wrong")
    export: bool = _setting(
        False, "also export SavedModel and int8 TFLite (float TFLite is always written)"
    )
    unknown_false_rejection: float = _setting(
        0.05,
        "share of in-class validation photos the unknown rule rejects: its threshold is set so, "
        "and photos stranger than that are answered `unknown` (0 = only stranger than every "
        "validation photo)",
        low=0.0, high=0.5,
    )  # fmt: skip
    runtime: str = _setting(
        "litert", "feature runtime to prefer (tensorflow also decodes with tf.data)", choices=RUNTIMES
    )
    ray: str | None = _setting(
        None,
        "compute the bottlenecks on a Ray cluster: `local` (an embedded Ray) or the head's "
        "HOST:PORT (default: in this process, or $RETRAIN_STUDIO_RAY_ADDRESS when set)",
    )
    weights: str | None = _setting(
        "imagenet", "backbone weights: imagenet, or None for random weights (tests)",
        choices=WEIGHTS, flag=False,
    )  # fmt: skip

    # What `JobRegistry.start` runs for this request: `python -m engine retrain`.
    job_command: ClassVar[str] = "retrain"

    def job_folder_name(self) -> str:
        """The backbone's name, which names the run folder (and must match the model)."""
        from engine.models.registry import DEFAULT_BACKBONE, get_backbone

        return get_backbone(self.architecture or DEFAULT_BACKBONE).name

    # ------------------------------------------------------------ metadata

    @staticmethod
    def setting(name: str) -> Setting:
        """The help and limits of field `name`.

        Raises:
            KeyError: no such field.
        """
        return TrainConfig.__dataclass_fields__[name].metadata["setting"]

    @staticmethod
    def default(name: str) -> Any:
        """The default value of field `name`."""
        return TrainConfig.__dataclass_fields__[name].default

    @staticmethod
    def kind(name: str) -> type:
        """The type a value of field `name` has when set: bool, int, float or str."""
        f = TrainConfig.__dataclass_fields__[name]
        return _scalar_type(f.default, f.type)

    # ------------------------------------------------------------ checks

    @property
    def augmenting(self) -> bool:
        """True when any distortion flag is on (features are computed per step)."""
        return bool(
            self.flip_left_right or self.random_crop or self.random_scale or self.random_brightness
        )

    def validate(self) -> TrainConfig:
        """Check every setting; the error names the flag, the value and what is allowed.

        Returns:
            This config, so calls can be chained.

        Raises:
            StudioError: on the first bad setting.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            rule: Setting = f.metadata["setting"]
            if value is None and (f.default is None or None in (rule.choices or ())):
                continue
            if not _type_ok(value, f.default, f.type) or not rule.accepts(value):
                raise StudioError(f"--{f.name}={value!r} is not allowed; {rule.allowed()}")
        if self.ray is not None:
            from engine.core.cluster import check_address

            check_address(self.ray)
        if self.testing_percentage + self.validation_percentage >= 100:
            raise StudioError(
                f"--validation_percentage={self.validation_percentage!r} is not allowed; "
                "validation + testing percentages must stay under 100"
            )
        return self

    # ------------------------------------------------------------ derived values

    def total_steps(self, train_count: int) -> int:
        """Steps to run: `how_many_training_steps`, or the epochs' worth of batches."""
        if self.epochs is None:
            return self.how_many_training_steps
        return max(1, math.ceil(self.epochs * train_count / self.train_batch_size))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied (this config is left as it is)."""
        return dataclasses.replace(self, **changes)

    def resolved(self, *, progress: ProgressCallback | None = None) -> TrainConfig:
        """A copy where every "default" is made concrete for one run.

        The demo dataset (generated on first use) for no `image_dir`, the
        default backbone for no `architecture`, its input size for no
        `image_size`, and a fresh random seed for no `seed` (recorded in
        config.json, so the run can be repeated).

        Args:
            progress: gets the demo generation's progress, if it happens. Defaults to None.

        Returns:
            The new config (this one is left as it is).

        Raises:
            StudioError: an unknown architecture, or a size it does not offer.
        """
        from engine.data.demo import ensure_demo_dataset
        from engine.models.registry import DEFAULT_BACKBONE, get_backbone

        backbone = get_backbone(self.architecture or DEFAULT_BACKBONE)
        if self.image_size is not None and self.image_size not in backbone.input_sizes:
            raise StudioError(
                f"--image_size={self.image_size} is not available for {backbone.name}; choose one of "
                f"{', '.join(map(str, backbone.input_sizes))}"
            )
        image_dir = self.image_dir
        if image_dir is None:
            image_dir = str(ensure_demo_dataset(progress=progress))
        from engine.core.cluster import resolve_address

        seed = self.seed
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little") & SEED_MAX
        return self.replace(
            image_dir=image_dir,
            architecture=backbone.name,
            image_size=self.image_size or backbone.input_size,
            seed=seed,
            ray=resolve_address(self.ray),
        )

    # ------------------------------------------------------------ as data

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (what request.json and config.json hold)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config from `as_dict()` output; keys that are not settings are ignored.

        Raises:
            StudioError: `data` is not a mapping.
        """
        if not isinstance(data, Mapping):
            raise StudioError(f"a training request must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # ------------------------------------------------------------ the command line

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one `--<field>` flag per setting, with its help, type, choices and default."""
        for f in dataclasses.fields(cls):
            rule: Setting = f.metadata["setting"]
            if not rule.flag:
                continue
            flag = f"--{f.name}"
            if f.default is False:
                parser.add_argument(flag, action="store_true", help=rule.help)
                continue
            kind = _scalar_type(f.default, f.type)
            choices = rule.choices if kind is str else None
            parser.add_argument(flag, type=kind, default=f.default, choices=choices, help=rule.help)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> TrainConfig:
        """The config the parsed flags describe (fields without a flag keep their default).

        Args:
            args: flags parsed by a parser given `add_arguments`.
            **overrides: fields to set regardless of the flags (e.g. `weights=None`).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        values = {name: getattr(args, name) for name in names if hasattr(args, name)}
        return cls(**{**values, **overrides})


def _scalar_type(default: Any, annotation: Any) -> type:
    """The argparse type of a field: from its default, else from its annotation text."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int | float | str):
        return type(default)
    text = str(annotation)
    for name, kind in (("int", int), ("float", float), ("str", str)):
        if text.startswith(name):
            return kind
    return str


def _type_ok(value: Any, default: Any, annotation: Any) -> bool:
    kind = _scalar_type(default, annotation)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)
