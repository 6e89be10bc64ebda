"""engine.runs.event_files: TensorBoard event files read without TensorFlow, as they grow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.errors import StudioError
from engine.runs import event_files
from engine.runs.event_files import inspect_logs, read_scalars
from tests.support.cli import REPO_ROOT
from tests.support.event_logs import SCALAR_STEPS, write_simple_values, write_tf2_logs


@pytest.fixture(scope="module")
def tf2_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tf2_logs(tmp_path_factory.mktemp("tb") / "logs")


def test_inspect_lists_runs_tags_kinds_and_step_ranges(tf2_logdir: Path) -> None:
    found = {
        (t.run, t.tag): (t.kind, t.count, t.first_step, t.last_step) for t in inspect_logs(tf2_logdir)
    }
    assert found == {
        ("train", "accuracy"): ("scalar", SCALAR_STEPS, 0, SCALAR_STEPS - 1),
        ("train", "cross_entropy"): ("scalar", SCALAR_STEPS, 0, SCALAR_STEPS - 1),
        ("train", "weights"): ("histogram", 3, 0, 20),
        ("train", "samples"): ("image", 1, 5, 5),
        ("train", "notes"): ("text", 1, 0, 0),
        ("validation", "accuracy"): ("scalar", SCALAR_STEPS, 0, SCALAR_STEPS - 1),
        ("validation", "cross_entropy"): ("scalar", SCALAR_STEPS, 0, SCALAR_STEPS - 1),
    }


def test_read_scalars_keeps_every_tf2_scalar_point(tf2_logdir: Path) -> None:
    frame = read_scalars(tf2_logdir)
    assert list(frame.columns) == ["run", "tag", "step", "value", "wall_time"]
    accuracy = frame[(frame.run == "validation") & (frame.tag == "accuracy")]
    assert accuracy.step.tolist() == list(range(SCALAR_STEPS))
    assert accuracy.value.to_numpy() == pytest.approx([0.1 + s / 100 for s in range(SCALAR_STEPS)])
    assert len(frame) == 4 * SCALAR_STEPS  # histograms, images and text are not scalars


def test_read_scalars_reads_tf1_simple_values(tmp_path: Path) -> None:
    write_simple_values(tmp_path / "run1", {1: 0.5, 2: 0.25})
    frame = read_scalars(tmp_path)
    assert frame[["run", "tag", "step", "value"]].values.tolist() == [
        ["run1", "loss", 1, 0.5],
        ["run1", "loss", 2, 0.25],
    ]
    assert frame.wall_time.tolist() == [1001.0, 1002.0]


def test_event_files_in_the_logdir_itself_are_run_dot(tmp_path: Path) -> None:
    write_simple_values(tmp_path, {0: 1.0})
    assert [(t.run, t.tag, t.kind) for t in inspect_logs(tmp_path)] == [(".", "loss", "scalar")]


def test_read_scalars_sees_records_appended_to_a_live_file(tmp_path: Path) -> None:
    path = write_simple_values(tmp_path / "live", {0: 1.0})
    assert read_scalars(tmp_path).step.tolist() == [0]
    extra = write_simple_values(tmp_path / "more", {1: 2.0, 2: 3.0})
    with open(path, "ab") as target:
        target.write(extra.read_bytes())
    shutil.rmtree(tmp_path / "more")
    frame = read_scalars(tmp_path)
    assert frame.step.tolist() == [0, 1, 2]
    assert frame.value.tolist() == [1.0, 2.0, 3.0]


def test_a_partial_last_record_is_read_once_complete(tmp_path: Path) -> None:
    source = write_simple_values(tmp_path / "src", {0: 1.0, 1: 2.0})
    data = source.read_bytes()
    live = tmp_path / "logs" / "run" / source.name
    live.parent.mkdir(parents=True)
    live.write_bytes(data[:-7])  # the last record cut short, as while it is being written
    assert read_scalars(tmp_path / "logs").step.tolist() == [0]
    with open(live, "ab") as handle:
        handle.write(data[-7:])
    assert read_scalars(tmp_path / "logs").step.tolist() == [0, 1]


def test_files_larger_than_a_read_slice_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        event_files, "_READ_CHUNK", 40
    )  # smaller than one record: exercises the growing read
    write_simple_values(tmp_path / "run", {step: float(step) for step in range(25)})
    assert read_scalars(tmp_path).step.tolist() == list(range(25))


def test_a_replaced_event_file_is_read_afresh(tmp_path: Path) -> None:
    path = write_simple_values(tmp_path / "run", {0: 1.0, 1: 2.0})
    read_scalars(tmp_path)
    replacement = write_simple_values(tmp_path / "other", {5: 9.0})
    os.replace(replacement, path)
    shutil.rmtree(tmp_path / "other")
    assert read_scalars(tmp_path)[["step", "value"]].values.tolist() == [[5, 9.0]]


def test_empty_logdir_gives_no_tags_and_an_empty_frame_with_columns(tmp_path: Path) -> None:
    assert inspect_logs(tmp_path) == []
    frame = read_scalars(tmp_path)
    assert frame.empty and list(frame.columns) == ["run", "tag", "step", "value", "wall_time"]


@pytest.mark.parametrize("reader", [inspect_logs, read_scalars])
def test_missing_logdir_is_a_studio_error(tmp_path: Path, reader) -> None:
    with pytest.raises(StudioError, match="is not a folder"):
        reader(tmp_path / "nope")


def test_reading_event_files_does_not_import_tensorflow(tmp_path: Path) -> None:
    write_simple_values(tmp_path / "run", {0: 1.0})
    code = (
        "import sys; from engine.runs.event_files import read_scalars, inspect_logs; "
        f"read_scalars({str(tmp_path)!r}); inspect_logs({str(tmp_path)!r}); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
