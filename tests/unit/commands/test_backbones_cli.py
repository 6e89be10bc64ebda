"""`python -m engine backbones` and `python -m engine imagenet`, run as a user would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.models.registry import list_backbones
from tests.support.cli import run_engine
from tests.support.factories import FIXTURES


def test_backbones_command_lists_every_backbone_with_availability() -> None:
    out = run_engine("backbones")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    for backbone in list_backbones():
        assert backbone.name in rows
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert "yes (offline)" in rows[name]


@pytest.mark.slow
@pytest.mark.parametrize(("photo", "best"), [("flower.jpg", "daisy"), ("china.jpg", "palace")])
def test_imagenet_prints_timing_then_top_k_classes_best_first(photo: str, best: str) -> None:
    out = run_engine("imagenet", "--image", str(FIXTURES / photo), "--top_k", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.fullmatch(r"Evaluation time \(1-image\): \d+\.\d{3}s", lines[0])
    assert len(lines) == 4 and lines[1].startswith(f"{best} ")
    probabilities = [float(line.rsplit(" ", 1)[1]) for line in lines[1:]]
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.jpg", "file not found"),
        (lambda d: _write(d / "notes.jpg", b"these are words, not pixels"), "not an image"),
        (lambda d: _write(d / "cut.jpg", (FIXTURES / "china.jpg").read_bytes()[:5000]), "truncated"),
    ],
    ids=["missing", "not_an_image", "truncated"],
)
def test_imagenet_bad_input_is_one_error_line_and_exit_code_2(tmp_path: Path, make, reason: str) -> None:
    out = run_engine("imagenet", "--image", str(make(tmp_path)))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert out.stderr.startswith("error: ") and reason in out.stderr
    assert "Traceback" not in out.stderr


def test_imagenet_unknown_architecture_is_a_user_error() -> None:
    out = run_engine("imagenet", "--image", str(FIXTURES / "flower.jpg"), "--architecture", "resnet9")
    assert out.returncode == 2 and out.stderr.startswith("error: architecture='resnet9' is unknown")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
