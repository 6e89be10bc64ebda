"""engine.train.sweep: the settings, the candidate list, and the runner writing the leaderboard.

The runner is driven with candidates that implement the candidate interface
without a network (their figures are given), so what is under test is what
the sweep does with them: the order, the files, the events, failures,
cancelling. The real backbone candidate runs in tests/unit/commands/test_sweep_cli.py.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.train import candidates as candidates_module
from engine.train.candidates import BackboneCandidate, CandidateResult, SweepContext, candidates_for
from engine.train.config import TrainConfig
from engine.train.sweep import LEADERBOARD_COLUMNS, read_leaderboard, run_sweep
from engine.train.sweep_config import SweepConfig
from tests.support.factories import write_class_folders

REQUIRED_COLUMNS = [
    "candidate", "test_accuracy", "macro_f1", "size_bytes", "int8_size_bytes", "latency_ms",
    "int8_accuracy_change",
]  # fmt: skip


@dataclasses.dataclass
class GivenCandidate:
    """A candidate whose figures are given (or whose scoring fails, or cancels the sweep)."""

    name: str
    accuracy: float = 0.9
    latency: float = 10.0
    fails: str | None = None
    missing: str | None = None
    on_evaluate: Any = None
    kind: str = "given"
    architecture: str = "efficientnet_lite0"
    input_size: int = 224
    seen: list[SweepContext] = dataclasses.field(default_factory=list)

    def unavailable(self) -> str | None:
        return self.missing

    def evaluate(self, context: SweepContext) -> CandidateResult:
        self.seen.append(context)
        context.workdir.mkdir(parents=True)
        (context.workdir / "scratch.bin").write_bytes(b"x")
        if self.on_evaluate is not None:
            self.on_evaluate()
        if self.fails:
            raise RuntimeError(self.fails)
        return CandidateResult(
            self.accuracy, self.accuracy - 0.05, len(context.dataset.split("test")), 4_000_000,
            1_000_000, self.latency, self.latency / 2, self.accuracy - 0.1, {"l2": 0.01},
        )  # fmt: skip

    def full_run(self, config: Any) -> TrainConfig:
        return TrainConfig(image_dir=config.image_dir, architecture=self.architecture, seed=config.seed)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "photos", {"red": 6, "blue": 6})


def _sweep(photos: Path, tmp_path: Path, chosen: list[GivenCandidate], **kwargs: Any):
    run = RunDir.create(tmp_path / "runs", backbone="sweep")
    events: list[dict[str, Any]] = []
    lines: list[str] = []
    config = SweepConfig(image_dir=str(photos), testing_percentage=20, validation_percentage=20, seed=5)
    result = run_sweep(
        config, run, on_event=events.append, echo=lines.append, candidates=chosen, **kwargs
    )
    return run, result, events, lines


# ---------------------------------------------------------------- settings and candidates


def test_sweep_config_travels_as_json_and_runs_as_the_sweep_job() -> None:
    config = SweepConfig(architectures="efficientnet_lite0,efficientnet_lite2", sizes="default", seed=3)
    data = json.loads(json.dumps(config.validate().as_dict()))
    assert SweepConfig.from_dict(data) == config
    assert (SweepConfig.job_command, config.job_folder_name()) == ("sweep", "sweep")
    assert config.names() == ["efficientnet_lite0", "efficientnet_lite2"]
    assert SweepConfig.from_dict({**data, "run_id": "x"}) == config


@pytest.mark.parametrize(
    ("changes", "flag"),
    [({"architectures": "efficientnet_lite0,resnet9"}, "--architectures"), ({"architectures": " , "}, "--architectures"),
     ({"sizes": "huge"}, "--sizes"), ({"validation_percentage": 60, "testing_percentage": 50}, "--validation_percentage"),
     ({"seed": -1}, "--seed")],
)  # fmt: skip
def test_bad_sweep_settings_are_refused_naming_the_flag(changes: dict[str, Any], flag: str) -> None:
    with pytest.raises(StudioError, match=f"{flag}=.* is not allowed"):
        SweepConfig(**changes).validate()


def test_the_shared_settings_keep_train_configs_help_and_limits() -> None:
    for name in ("validation_percentage", "testing_percentage", "class_weights", "seed"):
        assert (
            SweepConfig.__dataclass_fields__[name].metadata
            == TrainConfig.__dataclass_fields__[name].metadata
        )


def test_by_default_every_backbone_with_weights_here_is_a_candidate_at_each_size() -> None:
    names = [c.name for c in candidates_for(SweepConfig())]
    assert names[:6] == [
        "efficientnet_lite0@224", "efficientnet_lite0@192", "efficientnet_lite0@160",
        "efficientnet_lite0@128", "efficientnet_lite1@240", "efficientnet_lite2@260",
    ]  # fmt: skip
    default_sizes = [
        c.name
        for c in candidates_for(
            SweepConfig(architectures="efficientnet_lite0,efficientnet_lite2", sizes="default")
        )
    ]
    assert default_sizes == ["efficientnet_lite0@224", "efficientnet_lite2@260"]


def test_another_kind_plugs_in_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    made = GivenCandidate("small_cnn@64", kind="from scratch", architecture="small_cnn", input_size=64)
    monkeypatch.setitem(candidates_module.CANDIDATE_KINDS, "small_cnn", lambda name, config: [made])
    config = SweepConfig(architectures="small_cnn,efficientnet_lite1").validate()
    assert candidates_for(config) == [made, BackboneCandidate("efficientnet_lite1", 240)]
    assert "small_cnn@64" in [c.name for c in candidates_for(SweepConfig())]  # part of the default set


def test_a_backbone_candidate_becomes_a_full_run_on_the_sweeps_data_and_split() -> None:
    config = SweepConfig(image_dir="/photos", validation_percentage=15, testing_percentage=5, seed=9,
                         class_weights="balanced")  # fmt: skip
    full = BackboneCandidate("efficientnet_lite2", 260).full_run(config).validate()
    assert (full.architecture, full.image_size, full.image_dir, full.seed) == (
        "efficientnet_lite2",
        260,
        "/photos",
        9,
    )
    assert (full.validation_percentage, full.testing_percentage, full.class_weights) == (
        15,
        5,
        "balanced",
    )
    assert (full.head_fit, full.export) == ("lbfgs", True)


def test_a_backbone_without_weights_here_says_where_to_put_them(tmp_path, monkeypatch) -> None:
    from engine.models.registry import get_backbone

    monkeypatch.setenv("RETRAIN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    why = BackboneCandidate("mobilenet_v2", 96).unavailable()
    assert why == f"no ImageNet weights on this machine: {get_backbone('mobilenet_v2').weights_hint(96)}"
    assert BackboneCandidate("efficientnet_lite1", 240).unavailable() is None


# ---------------------------------------------------------------- the runner


def test_the_leaderboard_ranks_by_accuracy_then_speed_and_keeps_the_required_columns(
    photos, tmp_path
) -> None:
    chosen = [
        GivenCandidate("slow_good", 0.9, 30.0),
        GivenCandidate("fast_good", 0.9, 5.0),
        GivenCandidate("weak", 0.6, 1.0),
    ]
    run, result, _, _ = _sweep(photos, tmp_path, chosen)
    assert [row["candidate"] for row in result["rows"]] == ["fast_good", "slow_good", "weak"]
    with (run.path / "leaderboard.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == list(LEADERBOARD_COLUMNS) and set(REQUIRED_COLUMNS) <= set(table[0])
    assert [row["candidate"] for row in table] == ["fast_good", "slow_good", "weak"]
    assert float(table[0]["int8_accuracy_change"]) == pytest.approx(-0.1)
    assert (int(table[0]["size_bytes"]), int(table[0]["int8_size_bytes"])) == (4_000_000, 1_000_000)
    status = run.read_status()
    assert (status["state"], status["job"], status["best"], status["test_accuracy"]) == (
        "done",
        "sweep",
        "fast_good",
        0.9,
    )
    full = TrainConfig.from_dict(read_leaderboard(run)["rows"][0]["full_run"])
    assert (full.architecture, full.image_dir, full.seed) == ("efficientnet_lite0", str(photos), 5)


def test_every_candidate_sees_the_same_dataset_and_split_and_its_scratch_folder_is_removed(
    photos, tmp_path
) -> None:
    chosen = [GivenCandidate("a"), GivenCandidate("b")]
    run, _, _, _ = _sweep(photos, tmp_path, chosen)
    first, second = chosen[0].seen[0], chosen[1].seen[0]
    assert first.dataset is second.dataset
    assert [r.rel_path for r in first.dataset.split("test")] == [
        r.rel_path for r in second.dataset.split("test")
    ]
    assert not (run.path / "candidates").exists()
    assert sorted(p.name for p in run.path.iterdir()) == [
        "config.json", "events.jsonl", "leaderboard.csv", "leaderboard.json", "status.json",
    ]  # fmt: skip


def test_events_mark_each_candidate_and_its_row(photos, tmp_path) -> None:
    _, _, events, lines = _sweep(photos, tmp_path, [GivenCandidate("a"), GivenCandidate("b", 0.8)])
    phases = [(e["phase"], e.get("candidate")) for e in events if e["event"] == "phase"]
    assert phases == [("scan", None), ("candidate", "a"), ("candidate", "b"), ("done", None)]
    rows = [e for e in events if e["event"] == "candidate"]
    assert [(r["candidate"], r["test_accuracy"]) for r in rows] == [("a", 0.9), ("b", 0.8)]
    sweep = [e for e in events if e["event"] == "progress" and e["phase"] == "sweep"]
    assert (sweep[-1]["done"], sweep[-1]["total"], sweep[-1]["unit"]) == (2, 2, "candidates")
    assert lines[0] == "Candidate 1 of 2: a (given)"
    assert lines[1].startswith("a: test accuracy = 90.0% (N=")


def test_a_failing_candidate_is_a_row_with_its_error_and_the_others_go_on(photos, tmp_path) -> None:
    run, result, _, _ = _sweep(
        photos, tmp_path, [GivenCandidate("broken", fails="converter exploded"), GivenCandidate("ok")]
    )
    assert [(r["candidate"], r["error"]) for r in result["rows"]] == [
        ("ok", None),
        ("broken", "RuntimeError: converter exploded"),
    ]
    assert run.read_status()["state"] == "done"
    assert "RuntimeError: converter exploded" in run.log_path.read_text()  # the traceback is kept


def test_unavailable_candidates_are_listed_as_skipped_with_why(photos, tmp_path) -> None:
    chosen = [
        GivenCandidate("here"),
        GivenCandidate("elsewhere", missing="no weights: put file X in folder Y"),
    ]
    run, result, _, lines = _sweep(photos, tmp_path, chosen)
    assert [r["candidate"] for r in result["rows"]] == ["here"]
    assert read_leaderboard(run)["skipped"] == [
        {"candidate": "elsewhere", "reason": "no weights: put file X in folder Y"}
    ]
    assert "skipped elsewhere: no weights: put file X in folder Y" in lines


def test_nothing_runnable_fails_the_sweep_and_says_why(photos, tmp_path) -> None:
    with pytest.raises(StudioError, match="no candidate can run on this machine: x: no weights"):
        _sweep(photos, tmp_path, [GivenCandidate("x", missing="no weights")])
    [run] = [RunDir(p) for p in (tmp_path / "runs").iterdir()]
    assert run.read_status()["state"] == "failed" and "no weights" in run.read_status()["error"]


def test_cancel_stops_before_the_next_candidate_and_keeps_the_leaderboard_so_far(
    photos, tmp_path
) -> None:
    holder: dict[str, RunDir] = {}
    original = RunDir.create

    def create(*args: Any, **kwargs: Any) -> RunDir:
        holder["run"] = original(*args, **kwargs)
        return holder["run"]

    chosen = [
        GivenCandidate("first", on_evaluate=lambda: holder["run"].request_cancel()),
        GivenCandidate("second"),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunDir, "create", create)
        run, result, _, _ = _sweep(photos, tmp_path, chosen)
    assert result["cancelled"] is True and [r["candidate"] for r in result["rows"]] == ["first"]
    assert chosen[1].seen == []
    assert run.read_status()["state"] == "cancelled"
    assert [r["candidate"] for r in read_leaderboard(run)["rows"]] == ["first"]


def test_a_dataset_without_test_photos_is_refused(tmp_path) -> None:
    photos = write_class_folders(tmp_path / "photos", {"red": 4, "blue": 4})
    run = RunDir.create(tmp_path / "runs", backbone="sweep")
    config = SweepConfig(image_dir=str(photos), testing_percentage=0, seed=1)
    with pytest.raises(StudioError, match="the test split is empty"):
        run_sweep(config, run, candidates=[GivenCandidate("a")])
