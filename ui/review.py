"""The data loop in the app: the Review section of the Dataset page.

`render_review` runs the review (`engine.train.review`) on the chosen dataset
and shows it in tabs: label issues, near-duplicates and leaks, outliers, and
the history of changes. Each tab is a table of the findings with thumbnails,
where rows are selected and acted on together (`ui.review_table`: move to
class X, set aside, keep, and a side panel with the photo, its heatmap,
neighbours and history). The review is kept with the dataset
(`engine.train.review.store`), so a reload or another browser shows it at
once; it is redone when a photo changes.

Every action goes through `engine.data.edits` (journaled, undoable). A user's
own folder is changed only after the opt-in checkbox; the scan refreshes by
itself because a move changes the class folders' mtimes
(`ui.cached.folder_signature`), and the review is redone when the scan's
signature or the journal changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from engine.core.errors import StudioError
from engine.data import edits
from ui import cached
from ui.photo_actions import NOTICE_KEY, render_history, render_notice, render_permission
from ui.render import progress_callback
from ui.review_table import render_findings_table

REVIEWS_KEY = "review_results"
OPEN_TAB_KEY = "review_open_tab"


def _fix_leaks(root: str, review: Any) -> None:
    from engine.train.review import fix_leaks

    try:
        edit = fix_leaks(root, review)
        text = (
            f"Renamed {len(edit.moves)} photo(s) so each group stays in one split."
            if edit
            else "No leak to fix."
        )
        st.session_state[NOTICE_KEY] = ("success", text, None)
    except StudioError as error:
        st.session_state[NOTICE_KEY] = ("error", str(error), None)


def latest_run_on(root: Path) -> str | None:
    """The newest finished training run on `root` (its model draws the heatmaps), or None."""
    from engine.runs.listing import list_runs

    for summary in list_runs(job="retrain"):  # newest first
        if summary.status != "done" or not summary.run.model_path.is_file():
            continue
        image_dir = summary.run.read_config().get("image_dir")
        if image_dir and Path(image_dir).expanduser().resolve() == root.resolve():
            return str(summary.path)
    return None


def _review(root: Path, validation_pct: int, testing_pct: int, signature: float) -> Any:
    """The review for this folder, split and content: the kept one while no photo changed, else redone."""
    from engine.train.review import review_dataset

    journal = edits.journal_file(root)
    stamp = (
        str(root),
        validation_pct,
        testing_pct,
        signature,
        journal.stat().st_size if journal.exists() else 0,
    )
    stored = st.session_state.setdefault(REVIEWS_KEY, {})
    if stored.get("stamp") != stamp:
        review = review_dataset(
            root,
            validation_percentage=validation_pct,
            testing_percentage=testing_pct,
            progress=progress_callback("Reviewing the photos"),
        )
        stored.clear()
        stored.update(stamp=stamp, review=review)
    return stored["review"]


def _remember_tab(key: str) -> None:
    st.session_state[OPEN_TAB_KEY] = str(st.session_state.get(key, "")).split(" (")[0]


def _tabs(labels: list[str]) -> Any:
    """The review's tabs, the one open before staying open after a rerun (even when its count changed)."""
    # The tabs' state is keyed by their labels: new counts make new tabs, opened where the user was.
    key = "review_tabs_" + str(abs(hash(tuple(labels))))
    opened = st.session_state.get(OPEN_TAB_KEY)
    default = next((label for label in labels if label.split(" (")[0] == opened), None)
    return st.tabs(labels, key=key, default=default, on_change=_remember_tab, args=(key,))


def render_review(
    root: Path, dataset: Any, validation_pct: int, testing_pct: int, *, run_dir: str | None = None
) -> None:
    """The Review section: label issues, near-duplicates and leaks, outliers, history.

    Args:
        root: the dataset folder.
        dataset: its scan.
        validation_pct: the split's validation share.
        testing_pct: the split's test share.
        run_dir: a finished run on this data, for heatmaps. Defaults to None.
    """
    render_notice(root)
    allowed = render_permission(root)
    if not dataset.trainable:
        st.caption("The review needs a dataset that can be trained on (see the errors above).")
        return
    if not st.toggle(
        "Review the photos",
        key="review_on",
        help="Find mislabelled photos, near-duplicates, split leaks and outliers",
    ):
        render_history(root)
        return
    review = _review(root, validation_pct, testing_pct, cached.folder_signature(root))
    from ui.photo_actions import class_folders

    classes = class_folders(root)
    counts = review.counts()
    leaks = counts["near_duplicate"] + counts["split_leak"]
    labels = [
        f"Label issues ({counts['label_issue']})",
        f"Near-duplicates and leaks ({leaks})",
        f"Outliers ({counts['outlier']})",
        "History",
    ]
    tabs = _tabs(labels)
    with tabs[3]:
        render_history(root)
    with tabs[0]:
        render_findings_table(
            root, review.of_kind("label_issue"), classes, key="review_issue", allowed=allowed,
            run_dir=run_dir,
        )  # fmt: skip
    with tabs[1]:
        leak = review.leak
        if counts["split_leak"]:
            with_leak, without = leak.get("test_accuracy"), leak.get("test_accuracy_without_leaks")
            figures = (
                f"test accuracy {with_leak:.1%} with them, {without:.1%} without"
                if with_leak is not None and without is not None
                else ""
            )
            st.warning(
                f"{leak['leaked_test_photos']} test photo(s) have a near-copy in train: {figures}.",
                icon=":material/warning:",
            )
            if allowed:
                st.button(
                    "Keep each group in one split",
                    key="review_fix_leaks",
                    on_click=_fix_leaks,
                    args=(str(root), review),
                )
        render_findings_table(
            root, review.of_kind("split_leak") + review.of_kind("near_duplicate"), classes,
            key="review_dup", allowed=allowed, run_dir=run_dir,
        )  # fmt: skip
    with tabs[2]:
        render_findings_table(
            root, review.of_kind("outlier"), classes, key="review_outlier", allowed=allowed,
            run_dir=run_dir,
        )  # fmt: skip
