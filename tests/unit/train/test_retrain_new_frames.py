"""Retraining after the live camera saved frames: only the new frames get their features computed.

The bottleneck cache is keyed by each photo's content (not its path), so a
dataset that gained a few frames through `engine.data.edits.add_photos`
finds every old photo's features in the warm cache. This is what makes the
live page's "Retrain now" quick.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.core.rundir import RunDir
from engine.data.edits import add_photos, allow_edits
from engine.serve.live import encode_jpeg
from engine.train.retrain import retrain
from tests.support.tiny_model import ARCH, CLASSES, TinyRun


@pytest.mark.slow
def test_retraining_after_saving_frames_computes_features_only_for_the_new_frames(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    # copies of the shared run's photos and its warm cache (the shared run stays untouched)
    data = Path(shutil.copytree(tiny_run.data_dir, tmp_path / "data"))
    cache = Path(shutil.copytree(tiny_run.bottleneck_dir, tmp_path / "bottlenecks"))
    allow_edits(data)  # a user's own folder: the opt-in the live page asks for
    frames = [np.full((480, 640, 3), colour, np.uint8) for colour in ((240, 30, 30), (30, 240, 30))]
    added = add_photos(data, "red", [encode_jpeg(frames[0])], name_prefix="camera")
    added += add_photos(data, "green", [encode_jpeg(frames[1])], name_prefix="camera")
    assert all(path.is_file() for path in added)

    run = RunDir.create(tmp_path / "runs", backbone=ARCH)
    config = tiny_run.config.replace(
        image_dir=str(data), bottleneck_dir=str(cache), how_many_training_steps=2
    )
    retrain(config, run)
    counts = run.read_status()["bottlenecks"]
    assert counts["computed"] == 2
    assert counts["cached"] == sum(CLASSES.values())
