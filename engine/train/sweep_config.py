"""SweepConfig: the settings of a model comparison (a sweep), travelling like a TrainConfig.

A sweep scores several candidates (backbones at each input size, and any
other kind registered with `engine.train.sweep`) on one dataset and split.
Its settings work exactly as `TrainConfig`'s: each field's help and limits
live in its metadata, and validation, JSON (`request.json`) and command-line
flags are TrainConfig's own methods applied to these fields. The split,
class weights, seed and bottleneck folder are TrainConfig's settings, with
the same help, defaults and limits.

`JobRegistry.start(SweepConfig(...))` runs it as a job: `job_command` is
"sweep", so the job's process is `python -m engine sweep --run_dir DIR`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.core.errors import StudioError
from engine.core.progress import ProgressCallback
from engine.train.config import SEED_MAX, WEIGHTS, Setting, TrainConfig

SIZES = ("all", "default")
SWEEP_FOLDER_NAME = "sweep"


def _option(default: Any, help: str, **limits: Any) -> Any:
    return field(default=default, metadata={"setting": Setting(help, **limits)})


def _shared(name: str) -> Any:
    """A TrainConfig setting a sweep shares: the same default, help and limits."""
    return field(default=TrainConfig.default(name), metadata={"setting": TrainConfig.setting(name)})


@dataclass(frozen=True)
class SweepConfig:
    """Every setting of a sweep. `python -m engine sweep --help` prints them.

    Validation, `as_dict`, `from_dict` and the flags are TrainConfig's (see the module docstring).
    """

    image_dir: str | None = _shared("image_dir")
    architectures: str | None = _option(
        None,
        "comma-separated candidates, e.g. efficientnet_lite0,efficientnet_lite2 (default: every "
        "backbone whose weights are on this machine)",
    )
    sizes: str = _option(
        "all", "all: every input size a backbone offers; default: its own size only", choices=SIZES
    )
    validation_percentage: int = _shared("validation_percentage")
    testing_percentage: int = _shared("testing_percentage")
    class_weights: str = _shared("class_weights")
    seed: int | None = _shared("seed")
    bottleneck_dir: str | None = _shared("bottleneck_dir")
    ray: str | None = _shared("ray")
    weights: str | None = _option(
        "imagenet", "backbone weights: imagenet, or None for random weights (tests)",
        choices=WEIGHTS, flag=False,
    )  # fmt: skip

    # What `JobRegistry.start` runs for this request: `python -m engine sweep`.
    job_command: ClassVar[str] = "sweep"

    as_dict = TrainConfig.as_dict
    replace = TrainConfig.replace
    from_dict = classmethod(TrainConfig.from_dict.__func__)
    add_arguments = classmethod(TrainConfig.add_arguments.__func__)
    from_args = classmethod(TrainConfig.from_args.__func__)

    def job_folder_name(self) -> str:
        """`sweep`: a sweep's folder is `<YYYYmmdd-HHMMSS>-sweep` in the runs folder."""
        return SWEEP_FOLDER_NAME

    def names(self) -> list[str]:
        """The candidate names asked for (empty: the default set), in the order given."""
        if not self.architectures:
            return []
        return list(dict.fromkeys(n.strip() for n in self.architectures.split(",") if n.strip()))

    def validate(self) -> SweepConfig:
        """Check every setting, TrainConfig's way, and that the candidates are known.

        Returns:
            This config.

        Raises:
            StudioError: on the first bad setting (the message names it and what is allowed).
        """
        TrainConfig.validate(self)  # type: ignore[arg-type] - the same checks over these fields
        from engine.train.candidates import known_candidates

        known = known_candidates()
        unknown = [name for name in self.names() if name not in known]
        if unknown or (self.architectures is not None and not self.names()):
            raise StudioError(
                f"--architectures={self.architectures!r} is not allowed; give a comma-separated list "
                f"of {', '.join(known)}"
            )
        return self

    def resolved(self, *, progress: ProgressCallback | None = None) -> SweepConfig:
        """A copy with the demo dataset for no `image_dir` and a random seed for no `seed`."""
        from engine.core.cluster import resolve_address
        from engine.data.demo import ensure_demo_dataset

        image_dir = self.image_dir or str(ensure_demo_dataset(progress=progress))
        seed = self.seed if self.seed is not None else int.from_bytes(os.urandom(4), "little") & SEED_MAX
        return dataclasses.replace(self, image_dir=image_dir, seed=seed, ray=resolve_address(self.ray))
