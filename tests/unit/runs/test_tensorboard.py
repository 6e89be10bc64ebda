"""engine.tensorboard and the logs CLI: a real TensorBoard on 127.0.0.1, real event files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from engine import tensorboard as tb
from engine.errors import StudioError
from engine.runs import RunDir, process_alive

from .conftest import run_engine

REPO_ROOT = Path(__file__).resolve().parent.parent
SCALAR_STEPS = 30  # more than EventAccumulator's default of 10 kept tensor points


def _write_tf2_logs(logdir: Path) -> None:
    import tensorflow as tf

    for run, offset in (("train", 0.0), ("validation", 0.1)):
        writer = tf.summary.create_file_writer(str(logdir / run))
        with writer.as_default():
            for step in range(SCALAR_STEPS):
                tf.summary.scalar("accuracy", offset + step / 100, step=step)
                tf.summary.scalar("cross_entropy", 1.0 - step / 100, step=step)
            if run == "train":
                for step in (0, 10, 20):
                    tf.summary.histogram("weights", np.arange(10.0) + step, step=step)
                tf.summary.image("samples", np.zeros((2, 8, 8, 3), dtype=np.float32), step=5)
                tf.summary.text("notes", "hello", step=0)
        writer.close()


@pytest.fixture(scope="module")
def tf2_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logdir = tmp_path_factory.mktemp("tb") / "logs"
    _write_tf2_logs(logdir)
    return logdir


def _simple_value_event(tag: str, step: int, value: float):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return event_pb2.Event(step=step, wall_time=1000.0 + step, summary=summary)


def _write_simple_values(folder: Path, values: dict[int, float], tag: str = "loss") -> Path:
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for step, value in values.items():
        writer.add_event(_simple_value_event(tag, step, value))
    writer.close()
    [path] = [p for p in folder.iterdir() if "tfevents" in p.name]
    return path


# --------------------------------------------------------------------------- reading event files


def test_inspect_lists_runs_tags_kinds_and_step_ranges(tf2_logdir: Path) -> None:
    found = {
        (t.run, t.tag): (t.kind, t.count, t.first_step, t.last_step) for t in tb.inspect_logs(tf2_logdir)
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
    frame = tb.read_scalars(tf2_logdir)
    assert list(frame.columns) == ["run", "tag", "step", "value", "wall_time"]
    accuracy = frame[(frame.run == "validation") & (frame.tag == "accuracy")]
    assert accuracy.step.tolist() == list(range(SCALAR_STEPS))
    assert accuracy.value.to_numpy() == pytest.approx([0.1 + s / 100 for s in range(SCALAR_STEPS)])
    assert len(frame) == 4 * SCALAR_STEPS  # histograms, images and text are not scalars


def test_read_scalars_reads_tf1_simple_values(tmp_path: Path) -> None:
    _write_simple_values(tmp_path / "run1", {1: 0.5, 2: 0.25})
    frame = tb.read_scalars(tmp_path)
    assert frame[["run", "tag", "step", "value"]].values.tolist() == [
        ["run1", "loss", 1, 0.5],
        ["run1", "loss", 2, 0.25],
    ]
    assert frame.wall_time.tolist() == [1001.0, 1002.0]


def test_event_files_in_the_logdir_itself_are_run_dot(tmp_path: Path) -> None:
    _write_simple_values(tmp_path, {0: 1.0})
    assert [(t.run, t.tag, t.kind) for t in tb.inspect_logs(tmp_path)] == [(".", "loss", "scalar")]


def test_read_scalars_sees_records_appended_to_a_live_file(tmp_path: Path) -> None:
    path = _write_simple_values(tmp_path / "live", {0: 1.0})
    assert tb.read_scalars(tmp_path).step.tolist() == [0]
    extra = _write_simple_values(tmp_path / "more", {1: 2.0, 2: 3.0})
    with open(path, "ab") as target:
        target.write(extra.read_bytes())
    shutil.rmtree(tmp_path / "more")
    frame = tb.read_scalars(tmp_path)
    assert frame.step.tolist() == [0, 1, 2]
    assert frame.value.tolist() == [1.0, 2.0, 3.0]


def test_a_partial_last_record_is_read_once_complete(tmp_path: Path) -> None:
    source = _write_simple_values(tmp_path / "src", {0: 1.0, 1: 2.0})
    data = source.read_bytes()
    live = tmp_path / "logs" / "run" / source.name
    live.parent.mkdir(parents=True)
    live.write_bytes(data[:-7])  # the last record cut short, as while it is being written
    assert tb.read_scalars(tmp_path / "logs").step.tolist() == [0]
    with open(live, "ab") as handle:
        handle.write(data[-7:])
    assert tb.read_scalars(tmp_path / "logs").step.tolist() == [0, 1]


def test_files_larger_than_a_read_slice_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tb, "_READ_CHUNK", 40)  # smaller than one record: exercises the growing read
    _write_simple_values(tmp_path / "run", {step: float(step) for step in range(25)})
    assert tb.read_scalars(tmp_path).step.tolist() == list(range(25))


def test_a_replaced_event_file_is_read_afresh(tmp_path: Path) -> None:
    path = _write_simple_values(tmp_path / "run", {0: 1.0, 1: 2.0})
    tb.read_scalars(tmp_path)
    replacement = _write_simple_values(tmp_path / "other", {5: 9.0})
    os.replace(replacement, path)
    shutil.rmtree(tmp_path / "other")
    assert tb.read_scalars(tmp_path)[["step", "value"]].values.tolist() == [[5, 9.0]]


def test_empty_logdir_gives_no_tags_and_an_empty_frame_with_columns(tmp_path: Path) -> None:
    assert tb.inspect_logs(tmp_path) == []
    frame = tb.read_scalars(tmp_path)
    assert frame.empty and list(frame.columns) == ["run", "tag", "step", "value", "wall_time"]


@pytest.mark.parametrize("reader", [tb.inspect_logs, tb.read_scalars, tb.start_tensorboard])
def test_missing_logdir_is_a_studio_error(tmp_path: Path, reader) -> None:
    with pytest.raises(StudioError, match="is not a folder"):
        reader(tmp_path / "nope")


def test_reading_event_files_does_not_import_tensorflow(tmp_path: Path) -> None:
    _write_simple_values(tmp_path / "run", {0: 1.0})
    code = (
        "import sys; from engine.tensorboard import read_scalars, inspect_logs; "
        f"read_scalars({str(tmp_path)!r}); inspect_logs({str(tmp_path)!r}); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- the server


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def board_logdir(studio_home: Path, tf2_logdir: Path) -> Path:
    """A copy of the event files under a fresh studio home, so each test has its own server."""
    logdir = studio_home / "runs"
    shutil.copytree(tf2_logdir, logdir)
    yield logdir
    tb.stop_tensorboard(logdir)


def test_started_tensorboard_serves_its_page_and_our_runs(board_logdir: Path) -> None:
    board = tb.start_tensorboard(board_logdir)
    assert board.url == f"http://127.0.0.1:{board.port}/"
    status, page = _get(board.url)
    assert status == 200 and b"<html" in page.lower()
    _, runs = _get(board.url + "data/runs")
    assert sorted(json.loads(runs)) == ["train", "validation"]
    assert board.alive() and not board.reused


def test_second_start_reuses_the_running_server(board_logdir: Path) -> None:
    first = tb.start_tensorboard(board_logdir)
    again = tb.start_tensorboard(str(board_logdir) + "/")
    assert (again.pid, again.port, again.reused) == (first.pid, first.port, True)
    assert [p.pid for p in tb.running_tensorboards()] == [first.pid]


def test_stop_ends_the_process_and_frees_the_port(board_logdir: Path) -> None:
    board = tb.start_tensorboard(board_logdir)
    assert tb.stop_tensorboard(board_logdir) is True
    assert not process_alive(board.pid, board.pid_start)
    assert _port_closed(board.port)
    assert tb.running_tensorboards() == []
    assert tb.stop_tensorboard(board_logdir) is False


def test_a_dead_server_is_replaced_on_the_next_start(board_logdir: Path) -> None:
    board = tb.start_tensorboard(board_logdir)
    board.stop()
    fresh = tb.start_tensorboard(board_logdir)
    assert fresh.pid != board.pid and not fresh.reused and fresh.alive()


def test_a_busy_requested_port_is_replaced_by_a_free_one(board_logdir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        board = tb.start_tensorboard(board_logdir, port=busy)
        assert board.port != busy
        assert board.notice and str(busy) in board.notice
        assert _get(board.url + "data/environment")[0] == 200


def test_a_port_taken_after_the_check_is_retried_on_another(
    board_logdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the check says free, TensorBoard then fails to bind: the race the retry loop is for
    monkeypatch.setattr(tb, "_port_free", lambda host, port: True)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        board = tb.start_tensorboard(board_logdir, port=busy)
    assert board.port != busy
    assert (
        "could not bind" in (tb.paths.home_dir() / "tensorboard" / f"tensorboard-{busy}.log").read_text()
    )
    assert board.alive()


@pytest.mark.parametrize("port", [0, 70000, "6006", True])
def test_start_refuses_invalid_ports(tmp_path: Path, port: object) -> None:
    with pytest.raises(ValueError, match="port must be"):
        tb.start_tensorboard(tmp_path, port=port)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the CLI


def test_cli_inspect_logs_prints_runs_and_tags(tf2_logdir: Path, tmp_path: Path) -> None:
    out = run_engine("inspect-logs", "--logdir", str(tf2_logdir), home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "run: train" in out.stdout and "run: validation" in out.stdout
    assert any(
        line.split()[:3] == ["scalar", "accuracy", str(SCALAR_STEPS)]
        and f"steps 0..{SCALAR_STEPS - 1}" in line
        for line in out.stdout.splitlines()
    )


def test_cli_inspect_logs_of_a_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    out = run_engine("inspect-logs", "--logdir", str(tmp_path / "nope"), home=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr


def test_cli_tensorboard_starts_then_reuses_then_stops(tf2_logdir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    started = run_engine("tensorboard", "--logdir", str(tf2_logdir), home=home)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert _get(url)[0] == 200
        reused = run_engine("tensorboard", "--logdir", str(tf2_logdir), home=home)
        assert reused.stdout.startswith("Reusing") and reused.stdout.strip().endswith(url)
    finally:
        stopped = run_engine("tensorboard", "--logdir", str(tf2_logdir), "--stop", home=home)
    assert stopped.stdout.startswith("Stopped")
    assert _port_closed(int(url.rstrip("/").rsplit(":", 1)[1]))


def _finished(runs_dir: Path, accuracy: float) -> RunDir:
    run = RunDir.create(runs_dir, backbone="efficientnet_lite0")
    run.write_config({"image_dir": "/photos"})
    run.write_status("running")
    run.write_status("done", test_accuracy=accuracy, step=40)
    return run


def test_cli_runs_lists_runs_newest_first(tmp_path: Path) -> None:
    old, new = _finished(tmp_path, 0.5), _finished(tmp_path, 0.9)
    out = run_engine("runs", "--runs_dir", str(tmp_path), home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["RUN", "STATUS", "ARCHITECTURE"]
    assert [line.split()[0] for line in lines[1:]] == [new.run_id, old.run_id]
    assert "90.0%" in lines[1] and "/photos" in lines[1]


def test_cli_runs_delete_removes_one_run(tmp_path: Path) -> None:
    keep, gone = _finished(tmp_path, 0.5), _finished(tmp_path, 0.9)
    out = run_engine(
        "runs", "--runs_dir", str(tmp_path), "--delete", gone.run_id, home=tmp_path / "home"
    )
    assert out.returncode == 0, out.stderr
    assert not gone.path.exists() and keep.path.is_dir()


def test_cli_runs_delete_of_a_bad_id_is_a_one_line_error(tmp_path: Path) -> None:
    out = run_engine("runs", "--runs_dir", str(tmp_path), "--delete", "../etc", home=tmp_path / "home")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: run id '../etc' is not valid")
