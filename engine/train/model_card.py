"""A model card per run: `MODEL_CARD.md`, what a reader of the model needs to know, in Markdown.

Written at the end of a training from the run's `config.json` and
`report.json` (so it can be written again for any finished run), atomically:

- **Data**: the dataset folder and fingerprint, the classes, the photos per
  class and split, the files that were skipped and why.
- **Model**: backbone, input size and preprocessing, how the head was fitted,
  the settings and seed, the library versions.
- **Results**: test accuracy, precision / recall / F1 per class, the most
  frequent confusions, and each saved model's test accuracy, size and latency.
- **Unknown answer**: the rule that answers `unknown` for a photo of none of
  the classes, its threshold, and the rates measured on the run's own
  validation and test photos (or, for a run without one, that it has none).
- **Intended use and limits**: the classes it knows; whether it can answer
  `unknown` or always names one of them; its weakest classes.

Plain text from JSON, no TensorFlow, so pages and tests use it freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.core import fsutil
from engine.core.rundir import RunDir

MODEL_CARD_FILE = "MODEL_CARD.md"
CONFUSIONS_SHOWN = 5
WEAKEST_SHOWN = 3
SKIPPED_SHOWN = 20
# The settings a card lists (retrain.py's names), in this order.
CARD_SETTINGS = (
    "head_fit",
    "how_many_training_steps",
    "learning_rate",
    "lr_schedule",
    "train_batch_size",
    "validation_percentage",
    "testing_percentage",
    "class_weights",
    "dropout",
    "flip_left_right",
    "random_crop",
    "random_scale",
    "random_brightness",
    "fine_tune_blocks",
    "seed",
)
# Settings of retrain.py's SGD loop that an L-BFGS fit does not use (left off its card).
SGD_ONLY = ("learning_rate", "lr_schedule", "train_batch_size", "dropout")
EXPORT_NAMES = {
    "keras": "Keras (model.keras)",
    "saved_model": "SavedModel",
    "tflite": "TFLite float (export/model.tflite)",
    "tflite_int8": "TFLite int8 (export/model_int8.tflite)",
    "onnx": "ONNX (export/model.onnx)",
}


def describe_fit(summary: dict[str, Any]) -> str:
    """One sentence about a run's head fit (report.json's `head_fit`), for pages and the model card.

    Args:
        summary: report.json's `head_fit` (`engine.train.head_fit`'s `LbfgsLoop.summary` or
            `sgd_summary`).
    """
    method = summary.get("method")
    if method == "lbfgs":
        l2 = summary.get("l2")
        where = (
            "chosen on the validation split" if summary.get("chosen_on") == "validation" else "default"
        )
        state = "converged" if summary.get("converged") else "stopped at the iteration cap"
        return (
            f"L-BFGS, full batch on the cached features: {state} after {summary.get('iterations')} "
            f"iterations, L2 = {l2:g} ({where})"
        )
    if method == "sgd":
        text = (
            f"SGD (retrain.py's loop): {summary.get('steps')} steps of {summary.get('train_batch_size')} "
            f"photos at learning rate {summary.get('learning_rate'):g}"
        )
        reason = summary.get("reason")
        return text + (f"; L-BFGS was asked for, but {reason}" if reason else "")
    if method == "scratch":
        return (
            f"trained from scratch, every layer (Adam, augmentation on): {summary.get('epochs')} epochs, "
            f"{summary.get('steps')} steps of {summary.get('train_batch_size')} photos at learning rate "
            f"{summary.get('learning_rate'):g}"
        )
    return "unknown"


def model_card_path(run: RunDir) -> Path:
    """Where a run's model card is: `<run>/MODEL_CARD.md`."""
    return run.path / MODEL_CARD_FILE


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cell = lambda value: str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _percent(value: Any) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, int | float) else "-"


def _confusions(labels: list[str], matrix: list[list[int]]) -> list[tuple[str, str, int]]:
    pairs = [
        (labels[t], labels[p], count)
        for t, row in enumerate(matrix)
        for p, count in enumerate(row)
        if t != p and count
    ]
    return sorted(pairs, key=lambda pair: -pair[2])[:CONFUSIONS_SHOWN]


def _dataset_name(config: dict[str, Any]) -> str:
    # the folder's name only: the card is shared, and a server path tells its reader nothing
    root = (config.get("dataset") or {}).get("root") or config.get("image_dir") or "?"
    return Path(str(root)).name or str(root)


def _data_section(config: dict[str, Any], report: dict[str, Any]) -> list[str]:
    dataset = config.get("dataset") or {}
    classes = dataset.get("classes") or []
    lines = [
        "## Data",
        "",
        f"- Dataset: `{_dataset_name(config)}` (the folder's name)",
        f"- Fingerprint: `{config.get('dataset_fingerprint') or dataset.get('fingerprint', '?')}`",
        (
            f"- Split: {config.get('validation_percentage', '?')} % validation, "
            f"{config.get('testing_percentage', '?')} % test, the rest training (by file name hash, "
            "as retrain.py does)"
        ),
        "",
    ]
    rows = [(c["label"], c["train"], c["validation"], c["test"]) for c in classes]
    totals = dataset.get("split_counts") or {}
    rows.append(
        ("**all**", totals.get("train", "-"), totals.get("validation", "-"), totals.get("test", "-"))
    )
    lines += _table(("class", "train", "validation", "test"), rows)
    skipped = [(p["rel_path"], p["reason"]) for p in dataset.get("problems") or []]
    skipped += [(s["path"], s["reason"]) for s in report.get("skipped") or []]
    lines += ["", f"Skipped files: {len(skipped) or 'none'}."]
    lines += [f"- `{path}`: {reason}" for path, reason in skipped[:SKIPPED_SHOWN]]
    if len(skipped) > SKIPPED_SHOWN:
        lines.append(f"- ... and {len(skipped) - SKIPPED_SHOWN} more (see config.json)")
    return lines


def _model_section(config: dict[str, Any], report: dict[str, Any]) -> list[str]:
    backbone = config.get("backbone") or {}
    fit = report.get("head_fit")
    lines = [
        "## Model",
        "",
        f"- Backbone: `{backbone.get('name', config.get('architecture', '?'))}`, "
        f"{backbone.get('weights_source', 'ImageNet weights')}; "
        + (
            "every layer trained with the head"
            if backbone.get("pretrained") is False
            else "frozen"
            + (
                f" except its last {config['fine_tune_blocks']} blocks"
                if config.get("fine_tune_blocks")
                else ""
            )
        ),
        (
            f"- Input: {config.get('input_size', '?')} x {config.get('input_size', '?')} px RGB, central crop "
            f"{config.get('crop_fraction', '?')} of the short side, {config.get('resample', '?')} resize, "
            f"normalised {backbone.get('normalization', 'inside the model')}"
        ),
        f"- Head: a softmax layer on the {backbone.get('feature_size', '?')} backbone features; "
        + (describe_fit(fit) if isinstance(fit, dict) else "fit not recorded"),
        f"- Features computed on: {config.get('runtime', '?')}",
        "",
        "Settings (retrain.py's names):",
        "",
    ]
    unused = SGD_ONLY if isinstance(fit, dict) and fit.get("method") == "lbfgs" else ()
    shown = [(k, config.get(k)) for k in CARD_SETTINGS if k in config and k not in unused]
    lines += _table(("setting", "value"), shown)
    versions = config.get("versions") or {}
    lines += ["", "Libraries: " + (", ".join(f"{k} {v}" for k, v in versions.items()) or "not recorded")]
    return lines


def _results_section(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Results",
        "",
        (
            f"Test accuracy: **{_percent(report.get('accuracy'))}** on {report.get('count', 0)} test photos "
            "(never seen in training or in choosing settings)."
        ),
        "",
    ]
    lines += _table(
        ("class", "precision", "recall", "F1", "test photos"),
        [
            (r["label"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"])
            for r in report.get("per_class") or []
        ],
    )
    confusions = _confusions(report.get("labels") or [], report.get("confusion_matrix") or [])
    lines += [
        "",
        "Most frequent confusions (true → predicted):" if confusions else "No test photo was confused.",
    ]
    lines += [f"- {true} → {predicted}: {count}" for true, predicted, count in confusions]
    lines += _exports_lines(report)
    return lines


def _change(figures: dict[str, Any], accuracy: Any) -> str:
    if figures.get("accuracy") is None or accuracy is None:
        return "-"
    return f"{(figures['accuracy'] - accuracy) * 100:+.1f} points"


def _exports_lines(report: dict[str, Any]) -> list[str]:
    """Every saved model's figures (accuracy and its change, agreement, size, latency), and the
    exports that failed, with why."""
    scored = {"keras": report.get("keras") or {}, **(report.get("exports") or {})}
    accuracy = report.get("accuracy")
    rows = [
        (
            name,
            _percent(scored[key].get("accuracy")),
            _change(scored[key], accuracy),
            _percent(scored[key].get("top1_agreement")),
            f"{scored[key]['size_bytes'] / 1e6:.2f} MB" if scored[key].get("size_bytes") else "-",
            f"{scored[key]['latency_ms']:.1f} ms" if scored[key].get("latency_ms") is not None else "-",
        )
        for key, name in EXPORT_NAMES.items()
        if scored.get(key, {}).get("accuracy") is not None and scored[key].get("latency_ms") is not None
    ]
    failed = [
        (EXPORT_NAMES[k], v["error"]) for k, v in scored.items() if k in EXPORT_NAMES and v.get("error")
    ]
    lines: list[str] = []
    if rows:
        lines += [
            "",
            (
                "Each saved model, scored on the same test photos (change: against the run's own "
                "score; agreement: test photos given the same class as the run's own model; "
                "latency: one photo, median):"
            ),
            "",
        ]
        lines += _table(("model", "test accuracy", "change", "agreement", "size", "latency"), rows)
    if failed:
        note = "Exports that failed (the run is usable without them; `python -m engine export` tries again):"
        lines += ["", note, ""]
        lines += [f"- {name}: {error}" for name, error in failed]
    return lines


def _rate(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.1f}%"


def _unknown_section(report: dict[str, Any]) -> list[str]:
    unknown = report.get("unknown") or {}
    lines = ["## Unknown answer", ""]
    if not unknown.get("rule"):
        reason = unknown.get("reason") or "the run was trained before the unknown answer existed"
        return lines + [f"No unknown rule: {reason}. The model always names one of its classes."]
    fallback = unknown.get("fallback") or {}
    lines += [
        (
            f"A photo is answered `unknown` (none of the classes; the nearest classes are still "
            f"shown) when its score under the rule `{unknown['rule']}` is above "
            f"**{unknown['threshold']:.6g}**. The threshold was set on the run's own "
            f"{unknown.get('calibrated_on', 'validation')} photos (N={unknown.get('count', 0)}) so "
            f"that at most {_rate(unknown.get('false_rejection'))} of them would be rejected "
            f"(chosen by {unknown.get('chosen_by', 'measurement')})."
        ),
        "",
    ]
    lines += _table(
        ("model", "rule", "threshold", "validation photos rejected", "test photos rejected"),
        [
            ("export/model.tflite (gives features)", unknown["rule"], f"{unknown['threshold']:.6g}",
             _rate(unknown.get("validation_false_rejection")), _rate(unknown.get("test_false_rejection"))),
            ("other exports (probabilities only)", fallback.get("rule", "?"),
             f"{fallback.get('threshold', 0):.6g}", _rate(fallback.get("validation_false_rejection")),
             _rate(fallback.get("test_false_rejection"))),
        ],
    )  # fmt: skip
    lines += [
        "",
        (
            f"Test photos: N={unknown.get('test_count', 0)}, all of the known classes, so every one "
            "rejected is a false rejection. How often photos of other things are rejected depends on "
            "what they are; see BENCHMARKS.md (Unknown answer) for measured rates."
        ),
    ]
    return lines


def _limits_section(report: dict[str, Any]) -> list[str]:
    labels = report.get("labels") or []
    per_class = report.get("per_class") or []
    weakest = sorted(per_class, key=lambda r: (r["f1"], r["label"]))[:WEAKEST_SHOWN]
    lines = [
        "## Intended use and limits",
        "",
        f"- It knows {len(labels)} classes: {', '.join(labels)}.",
        (
            "- It answers `unknown` for photos its rule finds unlike all of them (see Unknown "
            "answer), but a photo of something else can still get a class, most of all one that "
            "looks like these classes: use it on photos of these classes."
            if (report.get("unknown") or {}).get("rule")
            else "- It always answers one of them, even for a photo of something else entirely "
            "(a photo of none of these classes still gets a class, often with a high probability): "
            "use it only on photos of these classes."
        ),
        (
            "- Its figures hold for photos like the training ones; other cameras, light, framing or "
            "backgrounds can score lower than the test accuracy says."
        ),
    ]
    if weakest:
        lines.append(
            "- Weakest classes (lowest F1 on the test photos): "
            + ", ".join(
                f"{r['label']} (F1 {r['f1']:.2f}, recall {r['recall']:.2f}, {r['support']} photos)"
                for r in weakest
            )
            + "."
        )
    return lines


def model_card_text(run_id: str, config: dict[str, Any], report: dict[str, Any]) -> str:
    """The model card of a run, as Markdown.

    Args:
        run_id: the run's id.
        config: the run's config.json.
        report: the run's report.json (with its export figures, when exported).

    Returns:
        The card's text, ending with a newline.
    """
    labels = report.get("labels") or config.get("labels") or []
    intro = (
        f"A {len(labels)}-class image classifier: the last layer of `{config.get('architecture', '?')}` "
        f"retrained on `{_dataset_name(config)}` with "
        f"Retrain Studio {(config.get('versions') or {}).get('engine', '')}".rstrip()
        + "."
    )
    sections = [
        [f"# Model card: {run_id}", "", intro],
        _data_section(config, report),
        _model_section(config, report),
        _results_section(report),
        _unknown_section(report),
        _limits_section(report),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def write_model_card(run: RunDir) -> Path:
    """Write `MODEL_CARD.md` into a finished run's folder, atomically.

    Args:
        run: the run (with config.json and report.json).

    Returns:
        The card's path.

    Raises:
        StudioError: the run has no report yet.
    """
    text = model_card_text(run.run_id, run.read_config(), run.read_report())
    return fsutil.atomic_write_text(model_card_path(run), text)
