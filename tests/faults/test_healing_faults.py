"""A training that meets every kind of damaged file heals them all and ends as the clean run did.

The session's tiny run is the clean run. Here its data and bottleneck cache are
copied, then the copies' scan cache and bottleneck database are damaged, and
the new run folder starts with a torn `status.json` and `events.jsonl`; the
same settings and seed must give the same steps and test accuracy, with each
damaged file kept aside and each damage recorded as a warning.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.core import heal
from engine.core.rundir import RunDir
from engine.data import scan_cache
from engine.data.scan import scan_dataset
from engine.train.retrain import retrain
from tests.support.tiny_model import ARCH, TinyRun, step_metrics


def _truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


@pytest.mark.slow
def test_a_run_meeting_every_damaged_file_heals_and_matches_the_clean_run(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    data = shutil.copytree(tiny_run.data_dir, tmp_path / "data").resolve()
    bottlenecks = shutil.copytree(tiny_run.bottleneck_dir, tmp_path / "bottlenecks")
    scan_dataset(data)
    _truncate(scan_cache.cache_file(data))
    [database] = bottlenecks.glob("*.sqlite")
    _truncate(database)
    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    run.status_path.write_bytes(b'{"state": "queued", "run_')
    run.events_path.write_bytes(b'{"event": "phase", "pha')

    lines: list[str] = []
    config = tiny_run.config.replace(image_dir=str(data), bottleneck_dir=str(bottlenecks))
    report = retrain(config, run, echo=lines.append)

    assert report["accuracy"] == tiny_run.report["accuracy"]
    assert step_metrics(run) == step_metrics(tiny_run.run)
    status = run.read_status()
    assert status["state"] == "done"
    assert status["bottlenecks"]["computed"] == 24  # the healed cache started empty
    warnings = status["warnings"]
    for what in (
        "the run's status file",
        "the run's events file",
        "the scan cache",
        "the bottleneck cache",
    ):
        assert sum(w.startswith(what) for w in warnings) == 1, (what, warnings)
    events = [e for e in run.read_events()[0] if e["event"] == "warning"]
    assert sorted(e["message"] for e in events) == sorted(warnings)
    log = run.log_path.read_text()
    assert all(f"warning: {w}" in log for w in warnings)
    assert (
        sum(line.startswith("warning: ") for line in lines) == 2
    )  # the caches; run files: in the folder
    for folder, name in (
        (run.path, "status.json"),
        (run.path, "events.jsonl"),
        (database.parent, database.name),
        (scan_cache.cache_file(data).parent, scan_cache.cache_file(data).name),
    ):
        assert list(folder.glob(f"{name}{heal.DAMAGED_MARK}*")), name
