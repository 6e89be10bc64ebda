"""`python -m engine export`: its --formats, and what it says for a folder that is not a run."""

from __future__ import annotations

import pytest

from engine.commands.export import parse_formats
from engine.core.errors import StudioError
from engine.serve.export import FORMATS
from tests.support.cli import run_engine


def test_formats_are_all_or_named_ones_in_export_order() -> None:
    assert parse_formats("all") == FORMATS
    assert parse_formats(" onnx, tflite ") == ("tflite", "onnx")  # FORMATS order


@pytest.mark.parametrize("text", ["coreml", "", "onnx,coreml"])
def test_an_unknown_format_is_refused_with_the_choices(text: str) -> None:
    with pytest.raises(StudioError, match="is not allowed; give 'all' or some of saved_model"):
        parse_formats(text)


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "photos").mkdir()
    proc = run_engine("export", "--run_dir", str(tmp_path / "photos"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "is not a run folder; give a finished run's folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any((tmp_path / "photos").iterdir()), "nothing is written into it"
