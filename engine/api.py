"""The few entry points a script or a notebook needs, re-exported by `engine`.

    import engine

    dataset = engine.scan_dataset(engine.demo_dataset())
    result = engine.retrain(engine.TrainConfig(how_many_training_steps=500, seed=1))
    print(result.test_accuracy, result.run.path)
    print(engine.Predictor.from_run(result.run.path).predict("photo.jpg").top_k)

Everything else is reachable through the layered modules (`engine.data`,
`engine.models`, `engine.train`, `engine.serve`, `engine.runs`); their
docstrings are the reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.progress import ProgressCallback
from engine.core.rundir import RunDir
from engine.train.config import TrainConfig
from engine.train.events import EventCallback


@dataclass(frozen=True)
class TrainedRun:
    """A finished (or cancelled) training: its run folder and its report.

    Attributes:
        run: the run folder (model, labels, report, TensorBoard logs, exports).
        report: what report.json holds, or `{"cancelled": True, "step": N}`.
    """

    run: RunDir

    report: dict[str, Any]

    @property
    def cancelled(self) -> bool:
        """Whether the training was cancelled before it finished."""
        return bool(self.report.get("cancelled"))

    @property
    def test_accuracy(self) -> float | None:
        """The final test accuracy (0..1), or None for a cancelled run."""
        value = self.report.get("test_accuracy")
        return float(value) if value is not None else None


def demo_dataset(dest: str | os.PathLike[str] | None = None) -> Path:
    """The generated demo dataset's folder (5 classes of drawn flowers), made on first use.

    Args:
        dest: where to write it. Defaults to None (`<datasets dir>/demo`).
    """
    from engine.data.demo import ensure_demo_dataset

    return ensure_demo_dataset(dest)


def retrain(
    config: TrainConfig | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    echo: Callable[[str], None] | None = None,
    on_event: EventCallback | None = None,
    exports: str = "now",
    note: Callable[[str], None] | None = None,
) -> TrainedRun:
    """Retrain a head in this process, into a new run folder (what `python -m engine retrain` does).

    Args:
        config: the settings. Defaults to None (`TrainConfig()`: the demo dataset,
            retrain.py's defaults, the offline default backbone).
        run_dir: an already created, empty run folder to use. Defaults to None (a new one).
        runs_dir: where a new run folder is created. Defaults to None (the studio's runs folder).
        progress: gets progress snapshots (scan, bottlenecks, export). Defaults to None.
        echo: gets retrain.py's lines (`Step 10: Train accuracy = ...`). Defaults to None.
        on_event: gets each event written to events.jsonl. Defaults to None.
        exports: "now" makes the exports (model.keras, and with `export` every format) right
            after the run is done; "later" leaves them to `python -m engine export`.
            Defaults to "now".
        note: gets the lines after `Final test accuracy` (each export's figures). Defaults
            to `echo`.

    Returns:
        The run folder and its report.

    Raises:
        StudioError: a bad setting or dataset (the message says what to change).
    """
    from engine.train import retrain as training

    config = (config or TrainConfig()).validate()
    if run_dir is not None:
        run = RunDir(run_dir)
    else:
        run = RunDir.create(runs_dir, backbone=config.job_folder_name())
    report = training.retrain(
        config, run, on_event=on_event, progress=progress, echo=echo, exports=exports, note=note
    )
    return TrainedRun(run, report)
