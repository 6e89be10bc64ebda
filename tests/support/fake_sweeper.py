"""A stand-in for `python -m engine sweep` (and, for a training request, `retrain`) in the dashboard's tests.

Run as `python tests/support/fake_sweeper.py --run_dir DIR`, as the job
registry runs the real command. A sweep request (DIR/request.json from a
`SweepConfig`) gets what the real sweep writes, through the engine's own
writers (`engine.train.sweep.write_leaderboard`, `leaderboard_row`, the real
candidates' `full_run`), in a blink and with made-up figures: config, status,
events and the leaderboard of the candidates it asked for. A training request
is handed to `tests/support/fake_trainer.py`. When `FAKE_TRAINER_GATE` names a
file, the sweep holds after its first candidate until that file exists or a
cancel is requested.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.core.rundir import RunDir
from engine.train.candidates import CandidateResult, candidates_for
from engine.train.sweep import leaderboard_row, write_leaderboard
from engine.train.sweep_config import SweepConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, run as a script too
import fake_trainer

# Made-up figures per candidate name prefix: (test accuracy, float latency ms, float MB).
FIGURES = {
    "efficientnet_lite0": (0.90, 8.0, 13.5),
    "efficientnet_lite1": (0.95, 14.0, 16.5),
    "efficientnet_lite2": (0.93, 20.0, 19.0),
    "small_cnn": (0.60, 0.7, 0.03),  # the from-scratch baseline: worse, far smaller and faster
}


def fake_sweep(run: RunDir, request: dict) -> int:
    config = SweepConfig.from_dict(request).resolved()
    run.write_status("running", pid=os.getpid(), job="sweep", architecture="sweep")
    chosen = candidates_for(config)
    run.write_config({**config.as_dict(), "job": "sweep", "candidates": [c.name for c in chosen]})
    rows = []
    for number, candidate in enumerate(chosen, start=1):
        run.append_event({"event": "phase", "phase": "candidate", "candidate": candidate.name})
        run.update_status(
            candidate=candidate.name, candidates_done=number - 1, candidates_total=len(chosen)
        )
        run.append_event(
            {
                "event": "progress",
                "phase": "bottlenecks",
                "done": 3,
                "total": 6,
                "unit": "images",
                "eta_s": 1.0,
            }
        )
        accuracy, latency, megabytes = FIGURES.get(candidate.architecture, (0.8, 5.0, 10.0))
        scale = candidate.input_size / 224
        # scored first, as the real sweep: the int8 figures come with a full run's exports
        result = CandidateResult(
            accuracy * min(1.0, scale), accuracy - 0.02, 30, int(megabytes * 1e6), None,
            latency * scale * scale, None, None, {"l2": 0.001},
        )  # fmt: skip
        row = leaderboard_row(candidate, result, 1.0)
        row["full_run"] = candidate.full_run(config).as_dict()
        rows.append(row)
        write_leaderboard(run, rows, labels=["daisy", "roses"], skipped=[])
        run.append_event(
            {"event": "candidate", "candidate": candidate.name, "test_accuracy": result.test_accuracy}
        )
        if number == 1 and not fake_trainer.wait_for_gate(run):
            run.write_status("cancelled", candidates_done=1)
            return 3
    best = max(rows, key=lambda r: r["test_accuracy"])
    run.append_event({"event": "phase", "phase": "done"})
    run.write_status("done", best=best["candidate"], test_accuracy=best["test_accuracy"],
                     candidates_done=len(rows), candidates_total=len(rows))  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run_dir", required=True)
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    request = run.read_request() or {}
    if "architectures" not in request:  # a training request: the fake trainer's job
        return fake_trainer.main()
    return fake_sweep(run, request)


if __name__ == "__main__":
    sys.exit(main())
