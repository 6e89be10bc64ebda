"""The Predict page's unknown answer: the switch, and how an unknown photo is worded."""

from __future__ import annotations

from typing import Any

import streamlit as st

MAX_NAMED_CLASSES = 8


def unknown_text(labels: list[str]) -> str:
    """`unknown — none of a, b, c` (the first few classes, then how many more)."""
    named = ", ".join(labels[:MAX_NAMED_CLASSES])
    more = len(labels) - MAX_NAMED_CLASSES
    return f"unknown — none of {named}" + (f" and {more} more" if more > 0 else "")


def render_unknown_toggle(predictor: Any) -> bool:
    """The "Answer unknown" switch (on by default); returns whether it is on.

    A run without rules (trained before them) gets a caption instead and always names a class.

    Args:
        predictor: the page's loaded `engine.serve.inference.Predictor`.
    """
    rule = predictor.rule
    if rule is None:
        st.caption("This run has no unknown rule (trained before it existed): it always names a class.")
        return False
    rules = predictor.rules
    rate = rules.false_rejection if rules is not None else 0.0
    return st.toggle(
        "Answer unknown",
        value=True,
        key="predict_unknown",
        help=f"Say unknown for a photo of none of the classes. Rule: {rule.kind}, threshold "
        f"{rule.threshold:.4g}, set so {rate:.0%} of the run's own validation photos would be "
        "called unknown. Off: always name the nearest class.",
    )
