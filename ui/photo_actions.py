"""Photo cards and their actions, shared by the Review section and the Train report's cell gallery.

A card shows one photo with its evidence (a caption, its nearest neighbours,
a Grad-CAM heatmap under a run's model when toggled) and the actions: move
to class X, set aside, keep. Each action goes through `engine.data.edits`
(journaled, undoable) from a button callback, and leaves a notice with an
Undo button for the next run of the page (`render_notice`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from engine.core.errors import StudioError
from engine.data import edits
from ui import cached
from ui.safe import md

NOTICE_KEY = "review_notice"
CARDS_PER_TAB = 8
COLUMNS = 4


def _act(action: str, root: str, rel_path: str, target: str | None = None) -> None:
    """A card's button callback: make the change, leave a notice for the next run of the page."""
    try:
        if action == "move":
            edit = edits.move_to_class(root, [rel_path], str(target))
            message = f"Moved {rel_path} to {target}."
        elif action == "set_aside":
            edit = edits.set_aside(root, [rel_path])
            message = f"Set {rel_path} aside (kept in the studio's quarantine folder)."
        else:
            edit = edits.keep(root, [rel_path])
            message = f"Kept {rel_path}: it will not be shown again."
        st.session_state[NOTICE_KEY] = ("success", message, edit.id)
    except StudioError as error:
        st.session_state[NOTICE_KEY] = ("error", str(error), None)


def _undo(root: str, edit_id: str | None = None, key: str = NOTICE_KEY) -> None:
    try:
        edit = edits.undo(root, edit_id)
        st.session_state[key] = ("success", f"Undone: {edit.describe(Path(root))}.", None)
    except StudioError as error:
        st.session_state[key] = ("error", str(error), None)


def render_notice(root: Path, *, key: str = NOTICE_KEY) -> None:
    """The last action's outcome (left in `st.session_state[key]`), with an Undo button."""
    notice = st.session_state.pop(key, None)
    if notice is None:
        return
    kind, message, edit_id = notice
    if kind == "error":
        from ui.errors import show_error

        show_error(message)  # escaped, server paths hidden when the app is exposed
        return
    left, right = st.columns([4, 1])
    left.success(md(message), icon=":material/check_circle:")
    if edit_id is not None:
        right.button(
            "Undo",
            key="review_undo_notice" if key == NOTICE_KEY else f"{key}_undo",
            on_click=_undo,
            args=(str(root), edit_id, key),
            icon=":material/undo:",
        )


def render_permission(root: Path) -> bool:
    """Whether the studio may change `root`; for a user's own folder, the opt-in checkbox."""
    if edits.edits_allowed(root):
        return True
    st.caption(
        "This is your own folder: the studio changes nothing in it unless you allow it. Moves are "
        "journaled and undoable, and photos set aside go to the studio's quarantine folder, never deleted."
    )
    if st.checkbox("Let the studio move files in this folder", key="review_allow_edits"):
        edits.allow_edits(root)
        return True
    return False


def render_photo_card(
    root: Path,
    rel_path: str,
    caption: str,
    classes: Sequence[str],
    *,
    key: str,
    allowed: bool,
    neighbours: Sequence[str] = (),
    run_dir: str | None = None,
) -> None:
    """One photo with its evidence and actions (move to a class, set aside, keep).

    Args:
        root: the dataset folder.
        rel_path: the photo, relative to `root`.
        caption: plain text under the photo (escaped here).
        classes: the class folders it can be moved to.
        key: a unique widget-key prefix.
        allowed: whether the actions are offered.
        neighbours: its most similar photos (relative paths). Defaults to none.
        run_dir: a run whose model explains the photo (a heatmap toggle). Defaults to None.
    """
    path = root / rel_path
    try:
        mtime = path.stat().st_mtime
    except OSError:
        st.caption(md(f"{rel_path}: no longer there"))
        return
    png = cached.thumbnail(str(path), mtime, 200)
    if run_dir and st.toggle(
        "Why this answer", key=f"{key}_heat", help="Grad-CAM heatmap of the predicted class"
    ):
        heat = cached.heatmap(run_dir, str(path), mtime)
        if heat is not None:
            png, caption = heat.overlay, f"{caption} · heatmap for {heat.label} ({heat.probability:.0%})"
    if png is not None:
        st.image(png, caption=md(caption), width="stretch")
    else:
        st.caption(md(f"{rel_path}: cannot be decoded"))
    if neighbours:
        thumbs = [cached.thumbnail(str(root / n), 0.0, 80) for n in neighbours]
        shown = [(t, n) for t, n in zip(thumbs, neighbours, strict=True) if t is not None]
        if shown:
            st.image(
                [t for t, _ in shown], caption=[md(Path(n).parent.name) for _, n in shown], width=56
            )
    if not allowed:
        return
    current = Path(rel_path).parts[0]
    targets = [c for c in classes if c != current]
    if targets:
        target = st.selectbox("Move to", targets, key=f"{key}_to")
        st.button(
            "Move",
            key=f"{key}_move",
            on_click=_act,
            args=("move", str(root), rel_path, target),
            icon=":material/drive_file_move:",
        )
    left, right = st.columns(2)
    left.button("Set aside", key=f"{key}_aside", on_click=_act, args=("set_aside", str(root), rel_path))
    right.button("Keep", key=f"{key}_keep", on_click=_act, args=("keep", str(root), rel_path))


def render_history(root: Path) -> None:
    """The dataset's changes, newest first, with Undo."""
    history = edits.history(root)
    if not history:
        st.caption("No change yet.")
        return
    open_edits = [e for e in history if e.op != "undo" and not e.undone_by]
    if open_edits:
        st.button(
            "Undo the last change",
            key="review_undo_last",
            on_click=_undo,
            args=(str(root), None),
            icon=":material/undo:",
        )
    rows = [
        {
            "when (UTC)": e.time.replace("T", " ")[:19],
            "change": e.describe(root),
            "undone": bool(e.undone_by),
        }
        for e in reversed(history)
    ]
    st.dataframe(rows, hide_index=True, key="review_history")


def class_folders(root: Path) -> list[str]:
    """The class folders of `root` (visible sub-folders but `unsorted/`), sorted."""
    from engine.data.walk import is_unsorted_folder

    try:
        return sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and not is_unsorted_folder(p.name)
        )
    except OSError:
        return []


def render_cell_gallery(run: Any, report: dict[str, Any], root: Path, cell: tuple[str, str]) -> None:
    """The test photos of one confusion-matrix cell, with heatmaps and the same actions as the review.

    Args:
        run: the run (`engine.core.rundir.RunDir`).
        report: its report.json.
        root: the dataset it was trained on.
        cell: `(true label, predicted label)`.
    """
    true, predicted = cell
    st.markdown(f"**Test photos of {md(true)} predicted as {md(predicted)}**")
    if true == predicted:
        count = report["confusion_matrix"][report["labels"].index(true)][
            report["labels"].index(predicted)
        ]
        st.caption(
            f"{count} photo(s) answered right; the report lists only the mistakes: click a cell off the diagonal."
        )
        return
    misses = [
        m
        for m in report.get("misclassified", [])
        if m["true_label"] == true and m["predicted_label"] == predicted
    ]
    if not misses:
        st.caption("None.")
        return
    render_notice(root)
    allowed = edits.edits_allowed(root)
    if not allowed:
        st.caption(
            "Allow changes to this folder on the Dataset page to move or set aside photos from here."
        )
    classes = class_folders(root)
    columns = st.columns(COLUMNS)
    for n, miss in enumerate(misses[:CARDS_PER_TAB]):
        with columns[n % COLUMNS]:
            render_photo_card(
                root, miss["path"], f"{miss['path']} ({miss['confidence']:.0%} {predicted})", classes,
                key=f"cell_{n}", allowed=allowed, run_dir=str(run.path),
            )  # fmt: skip


def heatmap_of(run_dir: str, data: bytes) -> Any:
    """The Grad-CAM heatmap of an uploaded photo under a run's model; None (and a message) when it cannot be made."""
    from ui.errors import show_error

    try:
        maker = cached.heatmapper(run_dir, (Path(run_dir) / "model.keras").stat().st_mtime)
        return maker(data)
    except (StudioError, OSError) as error:
        show_error(error, prefix="No heatmap: ")
        return None
