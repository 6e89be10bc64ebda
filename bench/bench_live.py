"""The live camera's frame processor: predictions per second and capture-to-label latency.

A camera thread makes 640x480 frames at 30 fps (demo photos, as the YUV 4:2:0
`av.VideoFrame`s a WebRTC decoder hands over) and queues them; a worker thread
does what streamlit-webrtc's async video worker does with a frame callback:
take the newest queued frame (older ones are skipped), convert it to RGB
(`to_ndarray(format="rgb24")`) and call `LiveClassifier.process`, which
prepares it (crop/resize as at training time) and runs the run's
`model.tflite` on LiteRT. Latency is from the moment the camera thread made
the frame to the moment its label was ready (queue wait + conversion +
prepare + model + smoothing); what the network and the browser add is not in
it (the e2e test's rate covers the whole path).

    python bench/bench_live.py [--run RUN_DIR] [--seconds 20] [--fps 30]

Without `--run` a default run (EfficientNet-Lite0, 224 px) is trained on the
demo dataset in a temporary folder first (about a minute). Goal (issue 13):
at least 10 predictions per second on 2 cores at 640x480.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL_PER_S = 10.0
SIZE = (640, 480)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f}, {os.cpu_count()} CPUs"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _train(work: Path) -> Path:
    from engine.core.rundir import RunDir
    from engine.data.demo import ensure_demo_dataset
    from engine.train.config import TrainConfig
    from engine.train.retrain import retrain

    demo = ensure_demo_dataset(work / "demo")
    run = RunDir.create(work / "runs", backbone="efficientnet_lite0")
    retrain(TrainConfig(image_dir=str(demo), seed=6, bottleneck_dir=str(work / "bn")), run)
    return run.path


def _frames(count: int) -> list[Any]:
    """Demo photos as 640x480 YUV 4:2:0 video frames (what the WebRTC decoder gives)."""
    import av
    from PIL import Image

    from engine.data.demo import DEMO_CLASSES, render_demo_image

    frames = []
    for index in range(count):
        image = render_demo_image(DEMO_CLASSES[index % len(DEMO_CLASSES)], index)
        rgb = np.asarray(image.convert("RGB").resize(SIZE, Image.Resampling.BILINEAR))
        frames.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    return frames


def measure(run_dir: Path, *, seconds: float, fps: float) -> dict[str, float]:
    """Feed frames at `fps` for `seconds` through a newest-frame worker; return the figures."""
    from engine.serve.inference import Predictor
    from engine.serve.live import LiveClassifier

    predictor = Predictor.from_run(run_dir)
    live = LiveClassifier.from_predictor(predictor)
    frames = _frames(10)
    inbox: queue.Queue = queue.Queue()
    stop = threading.Event()
    latencies: list[float] = []
    skipped = [0]

    def camera() -> None:
        start = time.monotonic()
        for index in range(int(seconds * fps)):
            due = start + index / fps
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # the camera's frame clock
            inbox.put((frames[index % len(frames)], time.monotonic()))
        stop.set()

    def worker() -> None:
        while not (stop.is_set() and inbox.empty()):
            try:
                item = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            while not inbox.empty():  # streamlit-webrtc's async worker keeps the newest frame only
                item = inbox.get_nowait()
                skipped[0] += 1
            frame, captured = item
            before = live.reading().predictions
            reading = live.process(frame.to_ndarray(format="rgb24"), captured_at=captured)
            if reading.predictions > before:
                latencies.append(reading.latency_ms)

    threads = [threading.Thread(target=camera), threading.Thread(target=worker)]
    began = time.monotonic()
    cpu_began = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    cpu = time.process_time() - cpu_began
    reading = live.reading()
    return {
        "frames": int(seconds * fps),
        "predictions": reading.predictions,
        "per_s": reading.predictions / wall,
        "skipped": skipped[0] + reading.dropped,
        "p50_ms": statistics.median(latencies),
        "p95_ms": _percentile(latencies, 0.95),
        "cpu_per_prediction_ms": cpu / max(1, reading.predictions) * 1000,
        "input_size": predictor.input_size,
        "runtime": predictor.runtime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run folder (default: train one)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-live-") as work:
        run_dir = args.run or _train(Path(work))
        print(f"== live frames: 640x480 at {args.fps:.0f} fps for {args.seconds:.0f} s ({_load()})")
        figures = measure(run_dir, seconds=args.seconds, fps=args.fps)
        print(
            f"  {figures['runtime']} at {figures['input_size']} px: {figures['predictions']} predictions "
            f"of {figures['frames']} frames = {figures['per_s']:.1f} per s "
            f"({figures['skipped']} frames skipped while busy)"
        )
        print(
            f"  capture to label: p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms; "
            f"CPU per prediction {figures['cpu_per_prediction_ms']:.1f} ms (all threads)"
        )
        verdict = "met" if figures["per_s"] >= GOAL_PER_S else "missed"
        print(f"  >= {GOAL_PER_S:.0f} predictions/s: {verdict} ({_load()} after)")


if __name__ == "__main__":
    main()
