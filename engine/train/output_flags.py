"""The files retrain.py writes where the user points it: checked before the run, copied after it.

`--output_graph`, `--output_labels`, `--summaries_dir` and the intermediate
models' folder are the user's places, not the run folder: `check_outputs`
refuses a path that could lose something before any work is done, and
`write_copies` writes the finished run's files there (engine.core.outputs
never replaces a folder, a file the studio did not write, or anything inside
the dataset).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from engine.core import fsutil, outputs
from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.train.config import TrainConfig
from engine.train.head import OUTPUT_NAME


def write_copies(config: TrainConfig, run: RunDir) -> None:
    """Copy a finished run's model, labels and TensorBoard logs where the flags ask.

    Args:
        config: the run's settings (`output_graph`, `output_labels`, `summaries_dir`).
        run: the run folder the copies are made from.

    Raises:
        StudioError: a target that `check_outputs` would refuse (it changed meanwhile).
    """
    protected = [str(config.image_dir)]
    if config.output_graph:
        outputs.write_output_bytes(
            config.output_graph, run.model_path.read_bytes(), what="--output_graph",
            protected=protected,
        )  # fmt: skip
    if config.output_labels:
        outputs.write_output_bytes(
            config.output_labels, run.labels_path.read_bytes(), what="--output_labels",
            protected=protected,
        )  # fmt: skip
    if config.summaries_dir:
        target = outputs.check_output_folder(
            Path(config.summaries_dir) / run.run_id, what="--summaries_dir", protected=protected
        )
        with fsutil.atomic_path(target) as tmp:
            shutil.copytree(run.tb_dir, tmp)


def check_outputs(config: TrainConfig, *, run_id: str | None = None) -> list[str]:
    """Refuse output paths that could lose something, before any work is done.

    `--output_graph` and `--output_labels` may not be folders, files the studio
    did not write, or lie inside the dataset; `--summaries_dir`'s run folder and
    the intermediate models' folder may not lie inside the dataset either.

    Args:
        config: the settings.
        run_id: the run's id, when known (the summaries go to `<summaries_dir>/<run_id>`).

    Returns:
        Notes to print (a flag that is accepted but means something else here).

    Raises:
        StudioError: a path that would be refused at the end of the run.
    """
    protected = [str(config.image_dir)] if config.image_dir else []
    notes = []
    if config.output_graph:
        outputs.check_output(config.output_graph, what="--output_graph", protected=protected)
    if config.output_labels:
        outputs.check_output(config.output_labels, what="--output_labels", protected=protected)
    if config.summaries_dir:
        folder = Path(config.summaries_dir)
        outputs.check_output_folder(
            folder / (run_id or "new-run"), what="--summaries_dir", protected=protected
        )
    if config.intermediate_store_frequency and config.intermediate_output_graphs_dir:
        folder = Path(config.intermediate_output_graphs_dir)
        if folder.exists() and not folder.is_dir():
            raise StudioError(
                f"--intermediate_output_graphs_dir={str(folder)!r} is a file; give a folder"
            )
        outputs.check_output(
            folder / "intermediate_1.keras", what="--intermediate_output_graphs_dir", protected=protected
        )
    name = config.final_tensor_name
    if name is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name):
        raise StudioError(
            f"--final_tensor_name={name!r} is not a layer name; use letters, digits, '_', '.', '-'"
        )
    if name == "final_result":
        notes.append(
            "note: --final_tensor_name=final_result is the dense layer's name here; "
            f"the softmax output is named {OUTPUT_NAME}"
        )
    return notes
