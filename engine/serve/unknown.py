"""The unknown answer at prediction time: a run's rejection rule, scored on one photo's outputs.

A `Rule` says how strange a photo is (its score, higher is stranger) and
rejects it as none of the run's classes when the score is above the rule's
threshold. The training calibrates the rules (`engine.train.unknown`, which
also says why the default kind was chosen) and stores them in the run folder
(`unknown.json`) and in every model file's info (`engine.serve.model_info`),
so a model file alone carries them. The kinds:

- `cosine`: 1 - the cosine similarity of the backbone's features to the
  nearest class centre (the mean direction of the class's training features);
- `mahalanobis_diag`: the RMS distance, in units of the pooled per-feature
  standard deviation, to the nearest class centre;
- `max_probability`: 1 - the top class probability;
- `energy`: -logsumexp of the head's logits (computed from the features and
  the head's kernel and bias, stored with the rule);
- `cosine_or_max_probability` (the default): both of the first and third,
  each divided by its own threshold for the target rate (`units`), the
  larger one counting: a photo unlike every class (far from all centres) or
  between two of them (no confident class) is unknown.

The feature kinds need the model's second output (the backbone's features):
the assembled LiteRT model of a run (`export/model.tflite`) has it; the other
exports (ONNX, SavedModel, int8 TFLite, model.keras) give probabilities only,
so they use the run's `fallback` rule, `max_probability`, calibrated the same
way. `unknown.json` holds `{"format", "false_rejection", "rule", "fallback",
...}` (`RuleSet`).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

UNKNOWN_FILE = "unknown.json"
RULE_FORMAT = 1
RULE_KINDS = ("cosine_or_max_probability", "cosine", "mahalanobis_diag", "max_probability", "energy")
FEATURE_KINDS = frozenset({"cosine_or_max_probability", "cosine", "mahalanobis_diag", "energy"})
UNKNOWN_LABEL = "unknown"
_ARRAYS = ("centres", "scale", "kernel", "bias", "units")


def _pack(array: np.ndarray) -> dict[str, Any]:
    """A float32 array as JSON: its shape and its little-endian bytes in base64 (compact and exact)."""
    values = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(values.shape), "float32": base64.b64encode(values.tobytes()).decode("ascii")}


def _unpack(data: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(str(data["float32"]), validate=True)
    return np.frombuffer(raw, dtype="<f4").reshape([int(n) for n in data["shape"]]).astype(np.float32)


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Rule:
    """One calibrated rejection rule.

    Attributes:
        kind: one of `RULE_KINDS`.
        threshold: a photo whose score is above it is unknown.
        centres: `(classes, features)` class centres (unit vectors for `cosine`,
            means for `mahalanobis_diag`); None for the probability kinds.
        scale: `(features,)` pooled per-feature standard deviation (`mahalanobis_diag`).
        kernel: `(features, classes)` the head's kernel (`energy`).
        bias: `(classes,)` the head's bias (`energy`).
        units: `(2,)` what the cosine and max-probability scores are divided by
            (`cosine_or_max_probability`).
    """

    kind: str
    threshold: float
    centres: np.ndarray | None = field(default=None, repr=False)
    scale: np.ndarray | None = field(default=None, repr=False)
    kernel: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    units: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ValueError(f"kind={self.kind!r} is unknown; choose one of {', '.join(RULE_KINDS)}")
        needed = {"cosine": ("centres",), "mahalanobis_diag": ("centres", "scale"),
                  "energy": ("kernel", "bias"), "max_probability": (),
                  "cosine_or_max_probability": ("centres", "units")}[self.kind]  # fmt: skip
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} rule needs {', '.join(missing)}")
        if not np.isfinite(self.threshold):
            raise ValueError(f"threshold={self.threshold!r} is not a finite number")

    @property
    def needs_features(self) -> bool:
        """Whether the rule reads the backbone's features (else probabilities only)."""
        return self.kind in FEATURE_KINDS

    @property
    def feature_size(self) -> int | None:
        """How many features the rule expects, or None for a probability rule."""
        if self.centres is not None:
            return int(self.centres.shape[-1])
        return None if self.kernel is None else int(self.kernel.shape[0])

    def scores(self, probabilities: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """How strange each photo is (higher is stranger).

        Args:
            probabilities: `(N, classes)` the model's probabilities.
            features: `(N, features)` the backbone's features; needed by the feature kinds.
                Defaults to None.

        Returns:
            `(N,)` float64 scores.

        Raises:
            ValueError: a feature kind without features, or features of the wrong width.
        """
        probabilities = np.asarray(probabilities, np.float64)
        if self.kind == "max_probability":
            return 1.0 - probabilities.max(axis=-1)
        if features is None:
            raise ValueError(f"a {self.kind} rule needs the backbone's features")
        x = np.asarray(features, np.float64)
        if x.shape[-1] != self.feature_size:
            raise ValueError(f"got {x.shape[-1]} features for a rule made on {self.feature_size}")
        if self.kind in ("cosine", "cosine_or_max_probability"):
            assert self.centres is not None
            cosine = 1.0 - (_unit(x) @ np.asarray(self.centres, np.float64).T).max(axis=-1)
            if self.kind == "cosine":
                return cosine
            assert self.units is not None
            unsure = 1.0 - probabilities.max(axis=-1)
            a, b = (max(float(u), 1e-9) for u in self.units)
            return np.maximum(cosine / a, unsure / b)
        if self.kind == "mahalanobis_diag":
            assert self.centres is not None and self.scale is not None
            z = (x[:, None, :] - self.centres[None].astype(np.float64)) / self.scale.astype(np.float64)
            return np.sqrt((z**2).mean(axis=-1)).min(axis=-1)
        assert self.kernel is not None and self.bias is not None
        logits = x @ self.kernel.astype(np.float64) + self.bias.astype(np.float64)
        top = logits.max(axis=-1)
        return -(top + np.log(np.exp(logits - top[:, None]).sum(axis=-1)))

    def rejects(self, scores: np.ndarray) -> np.ndarray:
        """Which scores are above the threshold (unknown)."""
        return np.asarray(scores, np.float64) > self.threshold

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: kind, threshold, and each array packed."""
        out: dict[str, Any] = {"kind": self.kind, "threshold": float(self.threshold)}
        for name in _ARRAYS:
            value = getattr(self, name)
            if value is not None:
                out[name] = _pack(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        """The rule `as_dict` wrote.

        Raises:
            ValueError: not a rule (missing or malformed fields).
        """
        try:
            arrays = {name: _unpack(data[name]) for name in _ARRAYS if data.get(name) is not None}
            return cls(kind=str(data["kind"]), threshold=float(data["threshold"]), **arrays)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not an unknown rule ({exc})") from None


@dataclass(frozen=True)
class RuleSet:
    """A run's rules: the chosen one and the probability-only fallback, with what was measured.

    Attributes:
        rule: the chosen rule (a feature kind when the run had features).
        fallback: the rule for models without a features output (`max_probability`).
        false_rejection: the share of in-class validation photos the thresholds reject.
        measured: what the calibration measured (JSON-ready; see `engine.train.unknown`).
    """

    rule: Rule
    fallback: Rule
    false_rejection: float
    measured: dict[str, Any] = field(default_factory=dict)

    def rule_classes(self) -> range:
        """The classes the rules were made for (from the centres or the head; all when unknown)."""
        for rule in (self.rule, self.fallback):
            if rule.centres is not None:
                return range(int(rule.centres.shape[0]))
            if rule.bias is not None:
                return range(int(rule.bias.shape[0]))
        return range(int(self.measured.get("classes", 0)))

    def for_model(self, has_features: bool, feature_size: int | None = None) -> Rule:
        """The rule a model can apply: the chosen one when it gives features of the right width."""
        if not self.rule.needs_features:
            return self.rule
        if has_features and feature_size == self.rule.feature_size:
            return self.rule
        return self.fallback

    def as_dict(self) -> dict[str, Any]:
        """What `unknown.json` and a model's info hold."""
        return {
            "format": RULE_FORMAT,
            "false_rejection": float(self.false_rejection),
            "rule": self.rule.as_dict(),
            "fallback": self.fallback.as_dict(),
            **self.measured,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RuleSet | None:
        """The rules `as_dict` wrote, or None when `data` holds none usable (an old run or model)."""
        if not isinstance(data, dict) or data.get("format") != RULE_FORMAT:
            return None
        try:
            rule, fallback = Rule.from_dict(data["rule"]), Rule.from_dict(data["fallback"])
        except (KeyError, ValueError, TypeError):
            return None
        if fallback.needs_features:
            return None
        measured = {
            k: v for k, v in data.items() if k not in ("format", "false_rejection", "rule", "fallback")
        }
        return cls(rule, fallback, float(data.get("false_rejection", 0.0)), measured)


def read_rules(run_dir: str | os.PathLike[str]) -> RuleSet | None:
    """A run folder's `unknown.json`, or None when it has none or it is unreadable (old runs)."""
    try:
        data = json.loads((Path(run_dir) / UNKNOWN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return RuleSet.from_dict(data)
