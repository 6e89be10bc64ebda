"""engine.train.unknown and engine.serve.unknown: rules fitted on train, thresholds set on validation."""

from __future__ import annotations

import numpy as np
import pytest

from engine.serve.unknown import RULE_KINDS, Rule, RuleSet, read_rules
from engine.train.unknown import calibrate, threshold_for

CLASSES, WIDTH = 3, 16


def _blobs(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters of positive features (like a backbone's), `per_class` points each."""
    rng = np.random.default_rng(seed)
    centres = np.eye(CLASSES, WIDTH) * 4.0 + 1.0
    y = np.repeat(np.arange(CLASSES), per_class)
    return np.abs(centres[y] + rng.normal(0, 0.3, size=(len(y), WIDTH))), y


@pytest.fixture(scope="module")
def splits() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    features, truth = {}, {}
    for seed, split, n in ((0, "train", 60), (1, "validation", 100), (2, "test", 40)):
        features[split], truth[split] = _blobs(n, seed)
    kernel = np.eye(WIDTH, CLASSES) * 3.0  # the head: each class reads its own feature
    return features, truth, kernel, np.zeros(CLASSES)


@pytest.mark.parametrize("target", [0.05, 0.1, 0.2])
def test_each_rule_rejects_the_target_share_of_its_calibration_photos(splits, target) -> None:
    features, truth, kernel, bias = splits
    for kind in RULE_KINDS:
        rules = calibrate(features, truth, kernel, bias, false_rejection=target, kind=kind)
        measured = rules.measured["validation_false_rejection"]
        assert measured <= target + 1e-9, kind
        assert measured >= target - 1 / len(truth["validation"]), kind  # as close as N allows


def test_noise_and_far_photos_are_rejected_and_in_class_ones_mostly_kept(splits) -> None:
    features, truth, kernel, bias = splits
    rules = calibrate(features, truth, kernel, bias)
    rng = np.random.default_rng(5)
    noise = np.abs(rng.normal(0, 3.0, size=(50, WIDTH)))
    probabilities = np.full((50, CLASSES), 1 / CLASSES)
    assert rules.rule.rejects(rules.rule.scores(probabilities, noise)).mean() > 0.9
    assert rules.measured["test_false_rejection"] <= 0.15


def test_threshold_never_rejects_more_than_the_share_of_a_few_photos() -> None:
    scores = np.asarray([0.1, 0.4, 0.2, 0.3])
    assert threshold_for(scores, 0.05) == 0.4  # 4 photos at 5 %: none rejected
    assert threshold_for(scores, 0.25) == 0.3  # one rejected
    with pytest.raises(ValueError, match="false_rejection"):
        threshold_for(scores, 1.0)


def test_a_rule_set_survives_json_exactly(splits, tmp_path) -> None:
    import json

    features, truth, kernel, bias = splits
    rules = calibrate(features, truth, kernel, bias)
    (tmp_path / "unknown.json").write_text(json.dumps(rules.as_dict()))
    again = read_rules(tmp_path)
    assert again is not None and again.rule.kind == rules.rule.kind
    x, p = features["test"], np.full((len(features["test"]), CLASSES), 1 / CLASSES)
    np.testing.assert_allclose(again.rule.scores(p, x), rules.rule.scores(p, x), rtol=1e-6)
    assert again.measured["candidates"] == rules.measured["candidates"]


@pytest.mark.parametrize(
    "data", [None, [], {"format": 99}, {"format": 1, "rule": {"kind": "magic", "threshold": 1}},
             {"format": 1, "rule": {"kind": "cosine", "threshold": 1, "centres": {"shape": [2], "float32": "!!"}},
              "fallback": {"kind": "max_probability", "threshold": 0.5}}],
)  # fmt: skip
def test_damaged_or_foreign_rules_read_as_none(data) -> None:
    assert RuleSet.from_dict(data) is None


def test_an_unreadable_unknown_json_reads_as_no_rule(tmp_path) -> None:
    (tmp_path / "unknown.json").write_bytes(b"\xff\x00 not json")
    assert read_rules(tmp_path) is None


def test_a_feature_rule_needs_features() -> None:
    rule = Rule("cosine", 0.1, centres=np.eye(2, 4, dtype=np.float32))
    with pytest.raises(ValueError, match="needs the backbone's features"):
        rule.scores(np.asarray([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="got 3 features"):
        rule.scores(np.asarray([[0.5, 0.5]]), np.ones((1, 3)))
