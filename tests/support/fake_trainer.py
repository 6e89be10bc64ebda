"""A stand-in for `python -m engine retrain` in the dashboard's AppTests.

Run as `python tests/support/fake_trainer.py --run_dir DIR`, as the job
registry runs the real trainer: the settings are in DIR/request.json (what
the Train page asked for). It writes what the real trainer writes, through
the same `engine.core.rundir.RunDir` API, in a blink: config, status, step
events, a report, labels, export files and the model card, so the pages can be driven without
TensorFlow. When `FAKE_TRAINER_GATE` names a file, it stays running after its
first step until that file exists or a cancel is requested (how tests see a
job mid-run). With `FAKE_TRAINER_HEAL` set it also reports the two heal
warnings a trainer records when it rebuilds a damaged file: one in
status.json's `warnings`, one as a `warning` event (HEAL_WARNINGS).

The registry starts it in the run folder with no PYTHONPATH of its own: the
engine is an installed package.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from engine.core.rundir import RunDir
from engine.train.evaluation import evaluate
from engine.train.model_card import write_model_card

LABELS = ["daisy", "roses"]
HEAL_WARNINGS = (
    "the bottleneck cache bottlenecks_lite0.sqlite was damaged; moved aside and rebuilt",
    "events.jsonl ended in a partial line; the line was dropped",
)
GATE_DEADLINE_S = 120.0


def wait_for_gate(run: RunDir) -> bool:
    """Poll the gate file; True to go on, False when cancelled."""
    gate = os.environ.get("FAKE_TRAINER_GATE")
    deadline = time.monotonic() + GATE_DEADLINE_S
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        if run.cancel_requested():
            return False
        time.sleep(0.05)
    return not run.cancel_requested()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run_dir", required=True)
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    request = run.read_request()
    if request is None:
        print(f"no request.json in {run.path}", file=sys.stderr)
        run.write_status("failed", error="no request.json")
        return 2
    run.write_config(
        {
            **request,
            "runtime": "litert",
            "runtime_notice": None,
            "bottleneck_decoder": "pil",
        }
    )
    run.write_status("running", pid=os.getpid())
    if os.environ.get("FAKE_TRAINER_HEAL"):
        run.update_status(warnings=[HEAL_WARNINGS[0]])
        run.append_event({"event": "warning", "time": time.time(), "message": HEAL_WARNINGS[1]})
    run.append_event({"event": "phase", "time": time.time(), "phase": "bottlenecks"})
    run.append_event(
        {
            "event": "progress",
            "time": time.time(),
            "phase": "bottlenecks",
            "done": 3,
            "total": 6,
            "eta_s": 1.0,
        }
    )
    run.append_event({"event": "phase", "time": time.time(), "phase": "train"})
    total = int(request["how_many_training_steps"])
    for step in range(1, total + 1):
        run.append_event(
            {
                "event": "step",
                "time": time.time(),
                "step": step,
                "total_steps": total,
                "train_accuracy": step / total,
                "cross_entropy": 1.0 / step,
                "learning_rate": 0.01,
                "images_per_s": 50.0,
                "elapsed_s": 0.1 * step,
                "validation_accuracy": step / total,
                "validation_cross_entropy": 1.1 / step,
            }
        )
        if step == 1 and not wait_for_gate(run):
            run.write_status("cancelled", step=step)
            return 3
    report = evaluate(
        LABELS,
        [0, 1, 1],
        [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
        paths=["daisy/a.jpg", "roses/b.jpg", "roses/c.jpg"],
    )
    report["test_accuracy"] = report["accuracy"]
    # Figures shaped as engine.export records them (values made up, shapes real).
    report["keras"] = {"accuracy": report["accuracy"], "size_bytes": 5_000_000, "latency_ms": 20.0}
    report["exports"] = {
        "tflite": {"accuracy": report["accuracy"], "size_bytes": 4_000_000, "latency_ms": 4.0},
        "tflite_int8": {"accuracy": 1 / 3, "size_bytes": 1_000_000, "latency_ms": 3.0},
    }
    # Shaped as engine.train.head_fit records the fit asked for (figures made up).
    report["head_fit"] = (
        {"method": "sgd", "requested": "sgd", "reason": None, "steps": total, "learning_rate": 0.01,
         "lr_schedule": "constant", "train_batch_size": 100}
        if request.get("head_fit") == "sgd"
        else {"method": "lbfgs", "requested": "lbfgs", "l2": 0.001, "chosen_on": "validation",
              "iterations": total, "converged": True}
    )  # fmt: skip
    run.write_report(report)
    run.write_labels(LABELS)
    run.export_dir.mkdir(parents=True, exist_ok=True)
    (run.export_dir / "model.tflite").write_bytes(b"fake tflite")
    (run.export_dir / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (run.export_dir / "saved_model").mkdir()
    (run.export_dir / "saved_model" / "saved_model.pb").write_bytes(b"fake graph")
    write_model_card(run)  # the real writer, on the fake's files
    run.append_event(
        {"event": "result", "time": time.time(), "test_accuracy": report["accuracy"], "test_count": 3}
    )
    run.write_status("done", step=total, test_accuracy=report["accuracy"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
