"""Live camera faults on the data side: a burst of frames saved while the dataset is being scanned.

The Dataset page (or a training) may scan the folder at the very moment the
live page saves a burst. Every frame is written under a temporary name and
renamed into place (`engine.data.edits.add_photos`), so a scan sees a frame
whole or not at all: never a half-written photo listed as a bad file, and the
scan after the burst finds every frame.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from engine.data.edits import add_photos, allow_edits, history
from engine.data.scan import scan_dataset
from engine.serve.live import encode_jpeg
from tests.support.factories import write_class_folders

BURST = 20


def test_a_burst_saved_during_scans_is_never_seen_half_written(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "data", {"red": 6, "blue": 6})
    allow_edits(root)
    frames = [encode_jpeg(np.full((480, 640, 3), (i * 10, 40, 200), np.uint8)) for i in range(BURST)]
    stop, scans, failures = threading.Event(), [], []

    def scan_again_and_again() -> None:
        while not stop.is_set():
            try:
                scans.append(scan_dataset(root, use_cache=False))
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                failures.append(repr(exc))

    scanner = threading.Thread(target=scan_again_and_again)
    scanner.start()
    try:
        saved = [
            path for frame in frames for path in add_photos(root, "blue", [frame], name_prefix="camera")
        ]
    finally:
        stop.set()
        scanner.join(120)
    assert failures == []
    assert scans, "no scan ran during the burst"
    for dataset in scans:
        assert dataset.problems == [], [p for p in dataset.problems]
        assert 6 <= sum(1 for r in dataset.images if Path(r.path).parent.name == "blue") <= 6 + BURST
    final = scan_dataset(root, use_cache=False)
    names = {Path(r.path).name for r in final.images}
    assert {p.name for p in saved} <= names
    assert final.problems == []
    assert len(history(root)) == BURST
