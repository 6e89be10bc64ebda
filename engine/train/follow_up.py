"""A run's exports, after it is done: model.keras from the head, then the formats asked, each re-scored.

A run on a LiteRT backbone is usable as soon as its head is fitted: the
training writes `export/model.tflite` (the backbone's converted graph plus the
head, `engine.serve.assemble`) and `head.npz` (the head's kernel and bias)
and says `done`. What needs TensorFlow comes afterwards, here, without
holding anything up: `model.keras` (the Keras backbone with the head's
weights; what Grad-CAM, `--output_graph` and the converters start from),
then every format asked (`engine.serve.export`), each scored on the test
split and recorded in report.json as it lands, then `--output_graph` and the
model card again, listing every export.

The training process runs this right after `done` (the CLI waits for it
unless `--defer_exports`; a dashboard job goes on in the background), and
`python -m engine export --run_dir RUN` (the Train report's buttons, through
`engine.runs.exports`) runs it on demand. Its state is `status.json`'s
`exports` (`state` pending | queued | running | done | failed, `formats`,
`done`, `errors`, `pid`): a failed export leaves the run usable and says why;
its traceback is in train.log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.core import fsutil, outputs
from engine.core.errors import StudioError, disk_full_error
from engine.core.procs import process_start_ticks
from engine.core.progress import Progress, ProgressCallback, ProgressTracker
from engine.core.rundir import RunDir
from engine.core.runstate import now_iso
from engine.data.dataset import Dataset
from engine.serve.export import FORMATS, export_run
from engine.serve.model_info import embed_in_keras, info_for
from engine.serve.unknown import read_rules
from engine.train.config import TrainConfig
from engine.train.events import log_failure
from engine.train.head import OUTPUT_NAME, Head, assemble_model
from engine.train.model_card import write_model_card
from engine.train.output_flags import write_copies

HEAD_FILE = "head.npz"
STATUS_KEY = "exports"
DEFAULT_FORMATS = ("tflite",)
EXPORT_STATES = ("pending", "queued", "running", "done", "failed")
LOCK_FILE = ".export.lock"


def formats_for(config: TrainConfig) -> tuple[str, ...]:
    """What a run's follow-up exports by default: the float TFLite, and with `--export` every format."""
    return FORMATS if config.export else DEFAULT_FORMATS


def head_path(run: RunDir) -> Path:
    """`head.npz`: the head's `kernel` `(features, classes)` and `bias` `(classes,)`."""
    return run.path / HEAD_FILE


def write_head(run: RunDir, kernel: np.ndarray, bias: np.ndarray) -> Path:
    """Write the head's weights into the run folder, atomically."""
    target = head_path(run)
    with fsutil.atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, kernel=np.asarray(kernel, np.float32), bias=np.asarray(bias, np.float32))
    return target


def read_head(run: RunDir) -> tuple[np.ndarray, np.ndarray]:
    """The head's `(kernel, bias)` from `head.npz`.

    Raises:
        StudioError: the run has none (it was trained on images, or before this round).
    """
    try:
        with np.load(head_path(run), allow_pickle=False) as data:
            return np.asarray(data["kernel"], np.float32), np.asarray(data["bias"], np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise StudioError(
            f"run {run.run_id} has no readable head.npz ({exc}); retrain it to export it"
        ) from exc


def output_name(config: TrainConfig) -> str:
    """The softmax output's name in Keras models (retrain.py's `--final_tensor_name`)."""
    name = config.final_tensor_name or OUTPUT_NAME
    return OUTPUT_NAME if name == "final_result" else name  # our dense layer already has that name


def save_keras_model(
    target: Path,
    model: Any,
    labels: list[str],
    run_config: dict[str, Any],
    *,
    what: str | None = None,
    unknown: dict[str, Any] | None = None,
) -> None:
    """A Keras model carrying its labels and preprocessing, written atomically.

    Args:
        target: where it goes.
        model: the Keras model (backbone + head).
        labels: the class names in output order.
        run_config: the run's config.json (its preprocessing).
        what: the flag that named `target` when it is the user's place (it then goes
            through `engine.core.outputs`). Defaults to None (a run folder's file).
        unknown: the run's unknown rules (`unknown.json`) for the model to carry. Defaults to None.
    """
    writing = outputs.output_path(target, what=what) if what else fsutil.atomic_path(target)
    with writing as tmp:
        model.save(tmp)
        embed_in_keras(tmp, info_for(labels, run_config, unknown))


def keras_from_head(run: RunDir) -> Any:
    """The run's Keras model built again from its backbone and `head.npz` (what made its features).

    Raises:
        StudioError: no head.npz, or the backbone's weights are gone.
    """
    import keras

    from engine.models.networks import build_feature_extractor
    from engine.models.registry import get_backbone

    data = run.read_config()
    config = TrainConfig.from_dict(data)
    backbone = get_backbone(str(data["architecture"]))
    size = int(data["input_size"])
    kernel, bias = read_head(run)
    keras.utils.set_random_seed(int(config.seed or 0))
    extractor = build_feature_extractor(backbone.name, input_size=size, weights=config.weights)
    head = Head(kernel.shape[1], kernel.shape[0], config.dropout, int(config.seed or 0))
    head.dense.kernel.assign(kernel)
    head.dense.bias.assign(bias)
    return assemble_model(extractor, head, backbone.name, size, output_name=output_name(config))


def _message(exc: BaseException) -> str:
    full = disk_full_error(exc)
    if full is not None or isinstance(exc, StudioError):
        return str(full or exc)
    first = (str(exc).splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def mark_pending(run: RunDir, formats: Sequence[str]) -> None:
    """Say in status.json that the run's exports are still to come."""
    run.update_status(**{STATUS_KEY: {"state": "pending", "formats": list(formats)}})


def run_follow_up(
    run: RunDir,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    dataset: Dataset | None = None,
    progress: ProgressCallback | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Make what a done run still lacks: model.keras, then `formats`, each scored; then the copies.

    Args:
        run: a done run folder.
        formats: any of `engine.serve.export.FORMATS`. Defaults to the float TFLite.
        dataset: the run's scanned dataset. Defaults to None (scanned again).
        progress: gets `Progress("export", ...)`. Defaults to None.
        echo: gets one line per model (`Exported onnx: accuracy 100.0%, 13.52 MB, ...`).
            Defaults to None.

    Returns:
        `{"results": per-format figures (or `error`), "errors": {name: message}}`.

    Raises:
        StudioError: the run is not done, or `formats` holds an unknown one.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise StudioError(f"formats={list(formats)!r} is not allowed; choose from {list(FORMATS)}")
    if run.read_status().get("state") != "done":
        raise StudioError(f"run {run.run_id} is not done; export a finished run")
    # One export of a run at a time (the training's own and one asked for from the page).
    with fsutil.file_lock(run.path / LOCK_FILE):
        return _follow_up(run, formats, dataset, progress, echo or (lambda line: None))


def _follow_up(
    run: RunDir,
    formats: Sequence[str],
    dataset: Dataset | None,
    progress: ProgressCallback | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    pid = os.getpid()
    state: dict[str, Any] = {"state": "running", "formats": list(formats), "done": [], "errors": {},
                             "pid": pid, "pid_start": process_start_ticks(pid), "started": now_iso()}  # fmt: skip
    run.update_status(**{STATUS_KEY: state})
    progress = _recording(run, state, progress)
    errors: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    config = TrainConfig.from_dict(run.read_config())
    if not run.model_path.exists():
        tracker = ProgressTracker("export", 1, progress, unit="models")
        try:
            rules = read_rules(run.path)
            save_keras_model(
                run.model_path, keras_from_head(run), run.read_labels(), run.read_config(),
                unknown=None if rules is None else rules.as_dict(),
            )  # fmt: skip
            say(f"Wrote model.keras ({run.model_path.stat().st_size / 1e6:.2f} MB)")
        except Exception as exc:  # noqa: BLE001 - the run stays usable on its TFLite model
            log_failure(run, exc)
            errors["keras"] = _message(exc)
        tracker.finish()
    try:
        results = export_run(
            run, formats=formats, dataset=dataset, progress=progress,
            on_failure=lambda name, exc: log_failure(run, exc),
        )  # fmt: skip
    except StudioError as exc:
        errors["export"] = str(exc)
    for name, figures in results.items():
        if "error" in figures:
            errors[name] = figures["error"]
            say(f"Export {name} failed: {figures['error']}")
            continue
        latency = figures.get("latency_ms")
        say(
            f"Exported {name}: accuracy {figures['accuracy'] * 100:.1f}%, "
            f"{figures['size_bytes'] / 1e6:.2f} MB" + (f", {latency:.1f} ms/image" if latency else "")
        )
    if config.output_graph or config.output_labels or config.summaries_dir:
        try:
            write_copies(config, run)
        except Exception as exc:  # noqa: BLE001 - the run itself is complete
            log_failure(run, exc)
            errors["copies"] = _message(exc)
    write_model_card(run)
    done = [name for name in results if "error" not in results[name]]
    state.update(state="failed" if errors else "done", done=done, errors=errors, finished=now_iso())
    run.update_status(**{STATUS_KEY: state})
    return {"results": results, "errors": errors}


def record_interrupted(run: RunDir, exc: BaseException) -> None:
    """A follow-up stopped by something it did not catch (Ctrl-C): the run stays done, the exports
    say `failed` and why, the traceback goes to train.log."""
    log_failure(run, exc)
    state = run.read_status().get(STATUS_KEY)
    state = state if isinstance(state, dict) else {}
    errors = {**(state.get("errors") or {}), "export": f"stopped: {_message(exc)}; export again"}
    run.update_status(**{STATUS_KEY: {**state, "state": "failed", "errors": errors}})


def _recording(
    run: RunDir, state: dict[str, Any], progress: ProgressCallback | None
) -> ProgressCallback:
    """`progress`, also putting each model finished into status.json (what a page shows)."""

    def forward(snapshot: Progress) -> None:
        if progress is not None:
            progress(snapshot)
        seen = state.get("progress") or {}
        if snapshot.phase == "export" and snapshot.done != seen.get("done"):
            state["progress"] = {"done": snapshot.done, "total": snapshot.total,
                                 "elapsed_s": round(snapshot.elapsed_s, 1), "eta_s": snapshot.eta_s,
                                 **({"format": snapshot.detail["format"]} if "format" in snapshot.detail else {})}  # fmt: skip
            run.update_status(**{STATUS_KEY: state})

    return forward


def export_state(run: RunDir) -> dict[str, Any]:
    """status.json's `exports`, with a running one whose process is gone turned into `failed`.

    Returns:
        The state dict (`state`, `formats`, `done`, `errors`, ...), or {} when the run never had one.
    """
    from engine.core.procs import process_alive

    state = run.read_status().get(STATUS_KEY)
    if not isinstance(state, dict):
        return {}
    active = state.get("state") in ("queued", "running")
    if active and not process_alive(state.get("pid"), state.get("pid_start")):
        state = {**state, "state": "failed",
                 "errors": {**(state.get("errors") or {}), "export": "the export process ended "
                            "unexpectedly; see train.log, then export again"}}  # fmt: skip
    return state
