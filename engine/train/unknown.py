"""Calibrating a run's unknown answer on its own validation photos.

Every candidate rule (`engine.serve.unknown.RULE_KINDS`) is fitted on the
training split's features (class centres, the pooled per-feature spread, the
head) and its threshold set on the validation split: above all but
`false_rejection` of the in-class validation photos' scores, so that share of them (5 % by default, `--unknown_false_rejection`) would be
answered `unknown`. Each candidate's measured rates on validation and test go
into report.json; the chosen rule and the probability-only fallback go into
`unknown.json` and every model file's info.

Which rule: `cosine_or_max_probability`, chosen by measurement
(`python bench/bench_unknown.py`; BENCHMARKS.md, "Unknown answer"). Each
score alone misses one kind of stranger. The features' distance to the
class centres (`cosine`, `mahalanobis_diag`) rejects every ImageNet photo,
drawing and noise image, but only 2 % of held-out digits: all digits lie
close together in ImageNet features, so an unseen digit is as near a centre
as a seen one. The probability scores (`max_probability`, `energy`) reject
46-50 % of held-out digits (an unseen digit falls between the classes), but
only 0-38 % of noise and drawings, which the head can answer confidently
because it only looks along the directions that separate its classes. The
two together (each score in units of its own 5 % threshold, the larger
counting, thresholded again for 5 %) reject 38 % of held-out digits and
96-100 % of everything else, at the same in-class rate.

The fallback for models without a features output is `max_probability`
(energy needs the logits, which no exported model gives: logits recovered
as log p lose their per-photo constant, and with it the energy).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from engine.core import fsutil
from engine.serve.unknown import RULE_KINDS, UNKNOWN_FILE, Rule, RuleSet
from engine.train.softmax import softmax

COMBINED_KIND = "cosine_or_max_probability"
DEFAULT_KIND = COMBINED_KIND
FALLBACK_KIND = "max_probability"
DEFAULT_FALSE_REJECTION = 0.05
CHOSEN_BY = "bench/bench_unknown.py (BENCHMARKS.md, Unknown answer)"
# Per-feature variances are shrunk this far towards their mean: a few photos per class give
# noisy spreads, and a near-zero spread would make one feature decide every distance.
VARIANCE_SHRINK = 0.1


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def probabilities_of(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The head's softmax on features, `(N, classes)` float64."""
    return softmax(np.asarray(features, np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias))


def fit_rule(
    kind: str, features: np.ndarray, truth: np.ndarray, kernel: np.ndarray, bias: np.ndarray
) -> Rule:
    """A rule of `kind` fitted on training features, its threshold not yet set (0).

    Args:
        kind: one of `RULE_KINDS`.
        features: `(N, features)` the training split's features.
        truth: `(N,)` their class indices.
        kernel: `(features, classes)` the head's kernel.
        bias: `(classes,)` the head's bias.

    Returns:
        The uncalibrated rule.

    Raises:
        ValueError: an unknown kind, or no features.
    """
    if kind not in RULE_KINDS or kind == COMBINED_KIND:
        choices = ", ".join(k for k in RULE_KINDS if k != COMBINED_KIND)
        raise ValueError(
            f"kind={kind!r} cannot be fitted alone; choose one of {choices} (calibrate "
            f"makes {COMBINED_KIND} from two of them)"
        )
    x = np.asarray(features, np.float64)
    y = np.asarray(truth, np.int64)
    if kind == "max_probability":
        return Rule(kind, 0.0)
    if kind == "energy":
        return Rule(kind, 0.0, kernel=np.asarray(kernel, np.float32), bias=np.asarray(bias, np.float32))
    if not len(x):
        raise ValueError(f"a {kind} rule needs training features")
    classes = np.asarray(kernel).shape[1]
    present = [c for c in range(classes) if np.any(y == c)]
    if kind == "cosine":
        unit = _unit(x)
        centres = np.zeros((classes, x.shape[1]))
        for c in present:
            centres[c] = unit[y == c].mean(axis=0)
        missing = [c for c in range(classes) if c not in present]
        if missing:  # a class with no training photo: a centre nothing is near
            centres[missing] = 0.0
        return Rule(kind, 0.0, centres=_unit(centres).astype(np.float32))
    means = np.zeros((classes, x.shape[1]))
    for c in present:
        means[c] = x[y == c].mean(axis=0)
    for c in range(classes):
        if c not in present:
            means[c] = np.inf
    residual = x - means[y]
    variance = (residual**2).mean(axis=0)
    variance = (1 - VARIANCE_SHRINK) * variance + VARIANCE_SHRINK * variance.mean() + 1e-12
    finite_means = np.where(np.isfinite(means), means, 1e6)
    return Rule(
        kind, 0.0, centres=finite_means.astype(np.float32), scale=np.sqrt(variance).astype(np.float32)
    )


def threshold_for(scores: np.ndarray, false_rejection: float) -> float:
    """The score above which `false_rejection` of these (in-class) scores lie, or fewer.

    The `k = floor(false_rejection * N)`-th highest score is passed: exactly `k` photos
    score above it (ties aside), as close to the share as N photos allow and never
    over it (4 validation photos at 5 % reject none of them; 180 reject 9).

    Args:
        scores: in-class photos' scores.
        false_rejection: the share to reject, in [0, 1).

    Raises:
        ValueError: no scores, or a share out of range.
    """
    if not 0.0 <= false_rejection < 1.0:
        raise ValueError(f"false_rejection={false_rejection!r} is not allowed; use 0 to below 1")
    scores = np.asarray(scores, np.float64)
    if not len(scores):
        raise ValueError("no scores to set a threshold on")
    ordered = np.sort(scores)
    rejected = int(np.floor(false_rejection * len(ordered) + 1e-9))
    return float(ordered[len(ordered) - rejected - 1])


def _with_threshold(rule: Rule, threshold: float) -> Rule:
    return dataclasses.replace(rule, threshold=threshold)


def _rate(rule: Rule, probabilities: np.ndarray, features: np.ndarray) -> float | None:
    if not len(features):
        return None
    return round(float(rule.rejects(rule.scores(probabilities, features)).mean()), 6)


def calibrate(
    features: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    kernel: np.ndarray,
    bias: np.ndarray,
    *,
    false_rejection: float = DEFAULT_FALSE_REJECTION,
    kind: str = DEFAULT_KIND,
) -> RuleSet:
    """Every candidate fitted on train and thresholded on validation; the chosen one and the fallback.

    Args:
        features: per split (`train`, `validation`, `test`), `(N, features)`.
        truth: per split, the class indices.
        kernel: `(features, classes)` the head's kernel.
        bias: `(classes,)` the head's bias.
        false_rejection: the share of in-class validation photos to reject. Defaults to
            `DEFAULT_FALSE_REJECTION`.
        kind: the rule to choose. Defaults to `DEFAULT_KIND`.

    Returns:
        The `RuleSet`; its `measured` holds `calibrated_on` (validation, or train when
        there is no validation photo), `count`, `validation_false_rejection`,
        `test_false_rejection`, `test_count`, `candidates` (each kind's threshold and
        rates) and `chosen_by`.

    Raises:
        ValueError: an unknown kind, no training features, or a share out of range.
    """
    if kind not in RULE_KINDS:
        raise ValueError(f"kind={kind!r} is unknown; choose one of {', '.join(RULE_KINDS)}")
    empty = np.zeros((0, np.asarray(kernel).shape[0]))
    train_x, train_y = features["train"], truth["train"]
    on = "validation" if len(features.get("validation", empty)) else "train"
    cal_x = features.get(on, empty)
    test_x = features.get("test", empty)
    cal_p = probabilities_of(cal_x, kernel, bias)
    test_p = probabilities_of(test_x, kernel, bias) if len(test_x) else np.zeros((0, len(bias)))
    rules: dict[str, Rule] = {}
    for name in (k for k in RULE_KINDS if k != COMBINED_KIND):
        fitted = fit_rule(name, train_x, train_y, kernel, bias)
        rules[name] = _with_threshold(
            fitted, threshold_for(fitted.scores(cal_p, cal_x), false_rejection)
        )
    # Both scores in units of their own threshold; the larger counts, thresholded for the same rate.
    units = np.asarray([rules["cosine"].threshold, rules["max_probability"].threshold], np.float32)
    combined = Rule(COMBINED_KIND, 0.0, centres=rules["cosine"].centres, units=units)
    rules[COMBINED_KIND] = _with_threshold(
        combined, threshold_for(combined.scores(cal_p, cal_x), false_rejection)
    )
    candidates = []
    for name in RULE_KINDS:
        rule = rules[name]
        candidates.append(
            {
                "kind": name,
                "threshold": round(rule.threshold, 6),
                "validation_false_rejection": _rate(rule, cal_p, cal_x),
                "test_false_rejection": _rate(rule, test_p, test_x),
            }
        )
    chosen = next(c for c in candidates if c["kind"] == kind)
    measured = {
        "classes": int(np.asarray(bias).shape[0]),
        "calibrated_on": on,
        "count": len(cal_x),
        "validation_false_rejection": chosen["validation_false_rejection"],
        "test_false_rejection": chosen["test_false_rejection"],
        "test_count": len(test_x),
        "candidates": candidates,
        "chosen_by": CHOSEN_BY,
    }
    return RuleSet(rules[kind], rules[FALLBACK_KIND], false_rejection, measured)


def summary(rules: RuleSet | None, reason: str | None = None) -> dict[str, Any]:
    """report.json's `unknown`: the rule, threshold and measured rates (no arrays).

    Args:
        rules: the run's rules, or None when it has none.
        reason: why it has none. Defaults to None.
    """
    if rules is None:
        return {"rule": None, "reason": reason}
    fallback_rate = next(
        (c for c in rules.measured.get("candidates", []) if c["kind"] == rules.fallback.kind), {}
    )
    return {
        "rule": rules.rule.kind,
        "threshold": round(rules.rule.threshold, 6),
        "false_rejection": rules.false_rejection,
        "fallback": {
            "rule": rules.fallback.kind,
            "threshold": round(rules.fallback.threshold, 6),
            "validation_false_rejection": fallback_rate.get("validation_false_rejection"),
            "test_false_rejection": fallback_rate.get("test_false_rejection"),
        },
        **{k: v for k, v in rules.measured.items()},
    }


def calibrate_loop(
    loop: Any, kernel: np.ndarray, bias: np.ndarray, false_rejection: float
) -> tuple[RuleSet | None, str | None]:
    """A trained loop's rules, from its cached features: `(rules, None)` or `(None, why not)`.

    Args:
        loop: a trained `LbfgsLoop` or `StepLoop` (their `features` and `truth` per split).
        kernel: the head's kernel.
        bias: the head's bias.
        false_rejection: the run's `unknown_false_rejection`.
    """
    features = getattr(loop, "features", None) or {}
    if not len(features.get("train", ())):
        return None, (
            "no cached features (fine-tuned or trained from scratch): the model always names a class"
        )
    return calibrate(features, loop.truth, kernel, bias, false_rejection=false_rejection), None


def write_rules(run: Any, rules: RuleSet) -> None:
    """`unknown.json` in the run folder, written atomically."""
    import json

    text = json.dumps(rules.as_dict(), indent=1, sort_keys=True)
    fsutil.atomic_write_bytes(run.path / UNKNOWN_FILE, text.encode("utf-8"))
