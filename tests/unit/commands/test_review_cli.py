"""`python -m engine review`: bad input gets one error line (the full run is in tests/unit/train/test_review.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run_engine
from tests.support.factories import write_class_folders


def test_review_is_listed_with_its_flags() -> None:
    done = run_engine("review", "--help")
    assert done.returncode == 0
    for flag in ("--image_dir", "--output_csv", "--duplicate_ssim", "--duplicate_radius", "--fix_leaks"):
        assert flag in done.stdout


def test_bad_input_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    for args, expected in [
        (["--image_dir", str(tmp_path / "missing")], "does not exist"),
        (["--image_dir", str(root), "--duplicate_ssim", "1.5"], "--duplicate_ssim=1.5 is out of range"),
        (
            ["--image_dir", str(root), "--duplicate_radius", "0"],
            "--duplicate_radius=0.0 is out of range",
        ),
    ]:
        done = run_engine("review", *args, home=tmp_path / "home")
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and expected in lines[-1]
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "edits").exists()  # nothing written for a refused review
