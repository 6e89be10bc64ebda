"""TensorFlow for Poets' own commands, verbatim, on a tiny generated tf_files/flower_photos.

The codelab's block with `python -m scripts.retrain` / `scripts.label_image`
replaced by `python -m engine retrain` / `label_image` and the architecture
set to the offline default, run by bash exactly as a user pastes it; the
TensorBoard line is its `--inspect` form, which prints instead of serving.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.paths import cache_dir
from tests.support.factories import write_class_folders

CODELAB = """\
ARCHITECTURE=efficientnet_lite0
python -m engine retrain \\
  --bottleneck_dir=tf_files/bottlenecks \\
  --how_many_training_steps=500 \\
  --model_dir=tf_files/models/ \\
  --summaries_dir=tf_files/training_summaries/"${ARCHITECTURE}" \\
  --output_graph=tf_files/retrained_graph.pb \\
  --output_labels=tf_files/retrained_labels.txt \\
  --architecture="${ARCHITECTURE}" \\
  --image_dir=tf_files/flower_photos
python -m engine label_image \\
    --graph=tf_files/retrained_graph.pb  \\
    --image=tf_files/flower_photos/daisy/daisy_000.jpg
tensorboard --inspect --logdir tf_files/training_summaries
"""
CLASSES = {"daisy": 6, "dandelion": 6, "roses": 6}


def _bash(script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["RETRAIN_STUDIO_CACHE"] = str(cache_dir())  # the session's converted backbone, no reconversion
    env["RETRAIN_STUDIO_HOME"] = str(home)
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def codelab(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    work = tmp_path_factory.mktemp("codelab")
    home = work / "studio"
    write_class_folders(work / "tf_files" / "flower_photos", CLASSES, size=(96, 80))
    return work, home, _bash(CODELAB, work, home)


@pytest.mark.slow
def test_the_codelab_block_runs_unchanged(codelab) -> None:
    _, _, result = codelab
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^Final test accuracy = \d+\.\d% \(N=\d+\)$", result.stdout, re.MULTILINE)


@pytest.mark.slow
def test_label_image_reads_the_graph_retrain_wrote_and_prints_label_image_lines(codelab) -> None:
    _, _, result = codelab
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Evaluation time (1-image): "))
    assert re.fullmatch(r"Evaluation time \(1-image\): \d+\.\d{3}s", lines[start])
    assert lines[start + 1] == ""
    answers = [line.split() for line in lines[start + 2 : start + 2 + len(CLASSES)]]
    assert sorted(label for label, _ in answers) == sorted(CLASSES)
    probabilities = [float(p) for _, p in answers]
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.slow
def test_tensorboard_inspect_lists_the_accuracy_and_cross_entropy(codelab) -> None:
    work, _, result = codelab
    inspected = result.stdout[result.stdout.index("Evaluation time") :]
    for tag in ("accuracy", "cross_entropy"):
        assert re.search(rf"^\s+{tag}$", inspected, re.MULTILINE), tag
    runs = list((work / "tf_files" / "training_summaries" / "efficientnet_lite0").iterdir())
    assert len(runs) == 1 and (runs[0] / "train").is_dir() and (runs[0] / "validation").is_dir()


@pytest.mark.slow
def test_outputs_are_readable_by_others_and_model_dir_keeps_the_weights(codelab) -> None:
    work, _, _ = codelab
    for name in ("retrained_graph.pb", "retrained_labels.txt"):
        mode = stat.S_IMODE((work / "tf_files" / name).stat().st_mode)
        assert mode == 0o666 & ~_umask(), (name, oct(mode))
    assert (work / "tf_files" / "retrained_labels.txt").read_text().split() == sorted(CLASSES)
    assert (work / "tf_files" / "bottlenecks").is_dir() and any(
        (work / "tf_files" / "bottlenecks").iterdir()
    )
    assert (work / "tf_files" / "models").is_dir()


@pytest.mark.slow
def test_running_the_block_again_replaces_the_files_it_wrote(codelab) -> None:
    work, home, _ = codelab
    again = _bash(CODELAB, work, home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((work / "tf_files" / "training_summaries" / "efficientnet_lite0").iterdir())) == 2


@pytest.mark.slow
def test_an_output_graph_that_is_a_folder_or_a_foreign_file_is_refused_before_training(
    codelab,
) -> None:
    work, home, _ = codelab
    folder = work / "tf_files" / "precious"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    foreign = work / "tf_files" / "someone_elses.pb"
    foreign.write_bytes(b"not ours")
    runs_before = sorted((home / "runs").iterdir())
    for target, why in ((folder, "is a folder"), (foreign, "was not written by Retrain Studio")):
        result = _bash(
            f"python -m engine retrain --image_dir=tf_files/flower_photos --output_graph={target}",
            work,
            home,
        )
        assert result.returncode == 2
        assert why in result.stderr and "Step " not in result.stdout
    assert (folder / "notes.txt").read_text() == "mine"
    assert foreign.read_bytes() == b"not ours"
    assert sorted((home / "runs").iterdir()) == runs_before  # refused before a run folder was made


def _umask() -> int:
    from engine.core.fsutil import current_umask

    return current_umask()
