"""A sweep: every candidate scored on one dataset and split, into a leaderboard.

`run_sweep(config, run)` scans the dataset once, then scores each candidate
(`engine.train.candidates`: a backbone at each input size it offers, or any
registered kind) in turn: its features from the bottleneck cache (each
computed once, ever), the L-BFGS head, test accuracy and macro-F1, and the
float model's size and LiteRT latency (the backbone's graph with the head
appended; nothing is exported). It writes into the sweep's folder (a run
folder named `<stamp>-sweep`):

- `request.json`, `status.json`, `events.jsonl`, `train.log` as a training's
  (`status.json` has `job: "sweep"`, and `best` / `test_accuracy` at the end);
- `config.json`: the resolved settings, the dataset, the candidates;
- `leaderboard.json` and `leaderboard.csv`, rewritten after every candidate,
  best test accuracy first (`LEADERBOARD_COLUMNS`; the JSON also holds each
  row's `full_run`, the `TrainConfig` that makes it a full run, and the
  candidates skipped with their reason).

A candidate that fails becomes a row with its `error`; the others go on.
Cancelling (the cancel flag or SIGTERM) stops before the next candidate and
keeps the leaderboard so far.

Exporting is for the candidate the user picks: `export_candidate_run` (the
CLI's `sweep --export`) trains it as a full run with every export, and
`attach_full_run` (also what the Compare page's one click leads to) records
that run in its row, whose int8 columns `refresh_full_runs` fills in from the
run's report once its exports are scored.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.core import fsutil
from engine.core.errors import StudioError
from engine.core.fsutil import read_json_dict
from engine.core.paths import engine_version
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.core.rundir import RunDir
from engine.data.scan import scan_dataset
from engine.train.candidates import Candidate, CandidateResult, SweepContext, candidates_for
from engine.train.config import TrainConfig
from engine.train.events import (
    CancelFlag,
    Echo,
    EventCallback,
    EventSink,
    RunCancelled,
    log_failure,
    record_failure,
)
from engine.train.softmax import FitStopped
from engine.train.sweep_config import SweepConfig

LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_CSV = "leaderboard.csv"
CANDIDATES_DIR = "candidates"
LEADERBOARD_COLUMNS = (
    "candidate",
    "kind",
    "architecture",
    "input_size",
    "test_accuracy",
    "macro_f1",
    "size_bytes",
    "int8_size_bytes",
    "latency_ms",
    "int8_latency_ms",
    "int8_accuracy_change",
    "test_count",
    "l2",
    "seconds",
    "error",
)


def leaderboard_row(candidate: Candidate, result: CandidateResult | None, seconds: float,
                    error: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One leaderboard row (every `LEADERBOARD_COLUMNS` key, plus `details`)."""
    figures = result or CandidateResult(0.0, 0.0, 0)
    return {
        "candidate": candidate.name,
        "kind": candidate.kind,
        "architecture": candidate.architecture,
        "input_size": candidate.input_size,
        "test_accuracy": None if result is None else figures.test_accuracy,
        "macro_f1": None if result is None else figures.macro_f1,
        "size_bytes": figures.size_bytes,
        "int8_size_bytes": figures.int8_size_bytes,
        "latency_ms": figures.latency_ms,
        "int8_latency_ms": figures.int8_latency_ms,
        "int8_accuracy_change": figures.int8_accuracy_change,
        "test_count": figures.test_count,
        "l2": figures.details.get("l2"),
        "seconds": round(seconds, 3),
        "error": error,
        "details": figures.details,
    }


def rank(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows best first: highest test accuracy, then lowest latency; failed rows last."""

    def key(row: dict[str, Any]) -> tuple[float, float]:
        accuracy = row.get("test_accuracy")
        latency = row.get("latency_ms")
        return (-(accuracy if accuracy is not None else -1.0), latency if latency is not None else 1e12)

    return sorted(rows, key=key)


def write_leaderboard(run: RunDir, rows: Sequence[dict[str, Any]], **extra: Any) -> Path:
    """Write `leaderboard.json` (rows ranked, plus `extra`) and `leaderboard.csv`, atomically.

    Args:
        run: the sweep's folder.
        rows: leaderboard rows (`leaderboard_row`, each with its `full_run`).
        **extra: more top-level keys for the JSON (`labels`, `dataset`, `skipped`, ...).

    Returns:
        The CSV's path.
    """
    ranked = rank(rows)
    fsutil.atomic_write_json(run.path / LEADERBOARD_JSON, {**extra, "rows": ranked})
    return fsutil.atomic_write_csv(run.path / LEADERBOARD_CSV, LEADERBOARD_COLUMNS, ranked)


def read_leaderboard(run: RunDir) -> dict[str, Any]:
    """A sweep's `leaderboard.json` (`rows` best first, `skipped`, `labels`, `dataset`), or {} before any."""
    data = read_json_dict(run.path / LEADERBOARD_JSON)
    rows = data.get("rows")
    return {**data, "rows": [r for r in rows if isinstance(r, dict)]} if isinstance(rows, list) else {}


def format_leaderboard(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The rows as printable cells, header first (for the CLI's table)."""

    def number(value: Any, text: Callable[[Any], str]) -> str:
        return "-" if value is None else text(value)

    table = [["CANDIDATE", "TEST ACC", "MACRO-F1", "FLOAT MB", "INT8 MB", "MS/IMAGE", "INT8 ACC"]]
    for row in rank(rows):
        table.append(
            [
                row["candidate"],
                "failed"
                if row.get("error")
                else number(row.get("test_accuracy"), lambda v: f"{v * 100:.1f}%"),
                number(row.get("macro_f1"), lambda v: f"{v:.3f}"),
                number(row.get("size_bytes"), lambda v: f"{v / 1e6:.2f}"),
                number(row.get("int8_size_bytes"), lambda v: f"{v / 1e6:.2f}"),
                number(row.get("latency_ms"), lambda v: f"{v:.1f}"),
                number(row.get("int8_accuracy_change"), lambda v: f"{v * 100:+.1f}"),
            ]
        )
    return table


class _Sweep:
    """One sweep; `run_sweep` is the public door."""

    def __init__(self, config: SweepConfig, run: RunDir, on_event: EventCallback | None,
                 progress: ProgressCallback | None, echo: Callable[[str], None] | None,
                 candidates: Sequence[Candidate] | None) -> None:  # fmt: skip
        self.config = config
        self.run = run
        self.sink = EventSink(run, on_event, progress)
        self.echo = Echo(echo)
        self.cancel = CancelFlag(run)
        self.candidates = candidates

    def run_all(self) -> dict[str, Any]:
        self.config.validate()
        self.run.write_status("running", pid=os.getpid(), job="sweep", architecture="sweep")
        config = self.config.resolved(progress=self.sink.on_progress)
        self.sink.phase("scan")
        dataset = scan_dataset(
            str(config.image_dir), validation_percentage=config.validation_percentage,
            testing_percentage=config.testing_percentage, progress=self.sink.on_progress,
        )  # fmt: skip
        dataset.require_trainable()
        if not dataset.split("test"):
            raise StudioError(
                "the test split is empty; a leaderboard needs test photos: raise --testing_percentage"
            )
        chosen = list(self.candidates) if self.candidates is not None else candidates_for(config)
        skipped = [{"candidate": c.name, "reason": why} for c in chosen if (why := c.unavailable())]
        runnable = [c for c in chosen if not c.unavailable()]
        if not runnable:
            raise StudioError(
                "no candidate can run on this machine: "
                + "; ".join(f"{s['candidate']}: {s['reason']}" for s in skipped)
            )
        summary = {
            "labels": list(dataset.labels),
            "dataset": {"root": str(dataset.root), "fingerprint": dataset.fingerprint,
                        "split_counts": dataset.summary()["split_counts"]},
            "skipped": skipped,
        }  # fmt: skip
        self.run.write_config(
            {
                **config.as_dict(),
                "run_id": self.run.run_id,
                "job": "sweep",
                **summary,
                "dataset_fingerprint": dataset.fingerprint,
                "candidates": [c.name for c in runnable],
                "versions": {"engine": engine_version(), "python": sys.version.split()[0]},
                "command": sys.argv,
            }
        )
        for item in skipped:
            self.echo(f"skipped {item['candidate']}: {item['reason']}")
        rows: list[dict[str, Any]] = []
        tracker = ProgressTracker("sweep", len(runnable), self.sink.on_progress, unit="candidates")
        for number, candidate in enumerate(runnable, start=1):
            if self.cancel.requested():
                return self._cancelled(rows)
            self.sink.phase("candidate", candidate=candidate.name)
            self.run.update_status(candidate=candidate.name, candidates_done=number - 1,
                                   candidates_total=len(runnable))  # fmt: skip
            self.echo(f"Candidate {number} of {len(runnable)}: {candidate.name} ({candidate.kind})")
            row = self._score(candidate, config, dataset)
            if row is None:
                return self._cancelled(rows)
            rows.append(row)
            self.sink.emit({"event": "candidate", **{k: row[k] for k in LEADERBOARD_COLUMNS}})
            write_leaderboard(self.run, rows, **summary)
            tracker.advance(1, candidate=candidate.name)
            self.echo(self._row_line(row))
        best = rank(rows)[0]
        self.sink.phase("done")
        self.run.write_status(
            "done", best=best["candidate"], test_accuracy=best["test_accuracy"],
            candidates_done=len(rows), candidates_total=len(runnable),
        )  # fmt: skip
        return read_leaderboard(self.run)

    def _score(self, candidate: Candidate, config: SweepConfig, dataset: Any) -> dict[str, Any] | None:
        """The candidate's row (with an `error` when it failed); None when the sweep was cancelled."""
        workdir = self.run.path / CANDIDATES_DIR / re.sub(r"[^A-Za-z0-9_.-]", "-", candidate.name)
        context = SweepContext(
            config, dataset, workdir, self.sink.on_progress, self.cancel.requested, self.echo
        )
        start = time.monotonic()
        result, error = None, None
        try:
            result = candidate.evaluate(context)
        except (RunCancelled, FitStopped):
            return None
        except StudioError as exc:
            if self.cancel.requested():
                return None
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one candidate's failure must not end the sweep
            log_failure(self.run, exc)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            with contextlib.suppress(OSError):
                workdir.parent.rmdir()  # only when empty
        row = leaderboard_row(candidate, result, time.monotonic() - start, error)
        row["full_run"] = candidate.full_run(config).as_dict()
        return row

    def _row_line(self, row: dict[str, Any]) -> str:
        if row["error"]:
            return f"{row['candidate']}: failed: {row['error']}"
        line = (
            f"{row['candidate']}: test accuracy = {row['test_accuracy'] * 100:.1f}% (N={row['test_count']}), "
            f"macro-F1 {row['macro_f1']:.3f}, float {(row['size_bytes'] or 0) / 1e6:.2f} MB, "
            f"{row['latency_ms'] or 0:.1f} ms/image"
        )
        if row["int8_size_bytes"] is not None:
            change = row["int8_accuracy_change"]
            line += f", int8 {row['int8_size_bytes'] / 1e6:.2f} MB" + (
                "" if change is None else f", int8 accuracy change {change * 100:+.1f} points"
            )
        return line

    def _cancelled(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        self.run.write_status("cancelled", candidates_done=len(rows))
        self.echo(f"Cancelled after {len(rows)} candidate(s); the leaderboard so far is kept.")
        return {"cancelled": True, "rows": rank(rows)}


def run_sweep(
    config: SweepConfig,
    run: RunDir,
    *,
    on_event: EventCallback | None = None,
    progress: ProgressCallback | None = None,
    echo: Callable[[str], None] | None = None,
    candidates: Sequence[Candidate] | None = None,
) -> dict[str, Any]:
    """Score every candidate into the sweep folder `run` (see the module docstring).

    Args:
        config: the settings (left unchanged).
        run: the sweep's folder (already created).
        on_event: called with each event (also appended to events.jsonl). Defaults to None.
        progress: called with `Progress` snapshots (sweep, bottlenecks, train, export). Defaults to None.
        echo: called with the log lines (one per candidate). Defaults to None.
        candidates: score these instead of the ones `config` names (tests). Defaults to None.

    Returns:
        The leaderboard (as leaderboard.json), or `{"cancelled": True, "rows": [...]}`.

    Raises:
        StudioError: bad settings or data, or no candidate that can run (status `failed`).
    """
    sweep = _Sweep(config, run, on_event, progress, echo, candidates)
    try:
        with sweep.cancel.sigterm():
            return sweep.run_all()
    except BaseException as exc:
        record_failure(run, sweep.sink, exc)
        raise


def attach_full_run(sweep: RunDir, candidate: str, run_id: str) -> None:
    """Record in the leaderboard that `candidate` was made the full run `run_id`.

    Args:
        sweep: the sweep's folder.
        candidate: the row's `candidate` name.
        run_id: the full run's folder name (in the same runs folder as the sweep).

    Raises:
        StudioError: the sweep has no such row.
    """
    board = read_leaderboard(sweep)
    rows = board.get("rows") or []
    if not any(row.get("candidate") == candidate for row in rows):
        raise StudioError(f"the sweep {sweep.run_id} has no candidate {candidate!r}")
    for row in rows:
        if row.get("candidate") == candidate:
            row["full_run_id"] = run_id
    extra = {k: v for k, v in board.items() if k != "rows"}
    write_leaderboard(sweep, rows, **extra)


def refresh_full_runs(sweep: RunDir) -> bool:
    """Fill each row's int8 columns from its full run's scored exports, where there are any.

    Args:
        sweep: the sweep's folder (its full runs live beside it).

    Returns:
        Whether the leaderboard changed (and was rewritten).
    """
    board = read_leaderboard(sweep)
    rows = board.get("rows") or []
    changed = False
    for row in rows:
        run_id = row.get("full_run_id")
        if not isinstance(run_id, str) or row.get("int8_accuracy_change") is not None:
            continue
        int8 = (RunDir(sweep.path.parent / run_id).read_report().get("exports") or {}).get("tflite_int8")
        if (
            not isinstance(int8, dict)
            or int8.get("accuracy") is None
            or row.get("test_accuracy") is None
        ):
            continue
        row["int8_size_bytes"] = int8.get("size_bytes")
        row["int8_latency_ms"] = int8.get("latency_ms")
        row["int8_accuracy_change"] = round(int8["accuracy"] - row["test_accuracy"], 6)
        changed = True
    if changed:
        write_leaderboard(sweep, rows, **{k: v for k, v in board.items() if k != "rows"})
    return changed


def export_candidate_run(
    sweep: RunDir,
    candidate: str = "best",
    *,
    progress: ProgressCallback | None = None,
    echo: Callable[[str], None] | None = None,
) -> RunDir:
    """Make a scored candidate a full run with every export, here, and fill in its row.

    Args:
        sweep: a done sweep's folder.
        candidate: the row's name, or "best" (the leaderboard's first). Defaults to "best".
        progress: the training's and the exports' progress. Defaults to None.
        echo: the training's lines. Defaults to None.

    Returns:
        The full run's folder (beside the sweep's).

    Raises:
        StudioError: no such candidate, or one that failed.
    """
    from engine.train.retrain import retrain

    rows = [row for row in read_leaderboard(sweep).get("rows") or [] if not row.get("error")]
    names = [row["candidate"] for row in rows]
    chosen = (
        rows[0]
        if candidate == "best" and rows
        else next((row for row in rows if row["candidate"] == candidate), None)
    )
    if chosen is None:
        raise StudioError(
            f"--export {candidate!r} is not a scored candidate of this sweep; choose best or one of "
            f"{', '.join(names) or '(none)'}"
        )
    config = TrainConfig.from_dict(chosen["full_run"])
    run = RunDir.create(sweep.path.parent, backbone=config.job_folder_name())
    attach_full_run(sweep, chosen["candidate"], run.run_id)
    retrain(config, run, progress=progress, echo=echo)
    refresh_full_runs(sweep)
    return run
