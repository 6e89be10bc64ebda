"""The Review's findings as a table: thumbnails, multi-row selection, bulk actions, a side panel.

`render_findings_table` draws one kind of findings as an `st.dataframe`
(an image column of thumbnails, the evidence beside it) where rows are
picked with the checkboxes (or Shift/Ctrl-click, arrows and Space in the
grid). The selected photos get one action together: *move to CLASS*, *set
aside*, *keep*, each one journaled edit (`engine.data.edits`) that one Undo
reverts; *Details* opens a side panel (`st.dialog`, on the right) with the
photo, its Grad-CAM heatmap under the newest run on this dataset, its
nearest neighbours and its history. The buttons have keyboard shortcuts
(Alt+M, Alt+A, Alt+K, Alt+O).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from engine.core.errors import StudioError
from engine.data import edits
from ui import cached
from ui.photo_actions import NOTICE_KEY
from ui.safe import md

# Rows shown per table (the most suspicious first); acting on them brings the next.
TABLE_ROWS = 200
THUMB_SIDE = 64
_GENERATION = "review_table_generation"


def thumbnail_url(path: Path, side: int = THUMB_SIDE) -> str | None:
    """A photo's thumbnail as a `data:image/png;base64,...` URL (what an image column shows), or None."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    png = cached.thumbnail(str(path), mtime, side)
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def findings_frame(root: Path, findings: Sequence[Any]) -> pd.DataFrame:
    """The table's rows: one per finding, with a thumbnail URL and the evidence in words."""
    rows = []
    for item in findings[:TABLE_ROWS]:
        if item.kind == "label_issue":
            why = f"filed as {item.given_label}, looks like {item.suggested_label}"
        elif item.kind == "outlier":
            why = "far from every class"
        else:
            why = f"group {item.group} ({item.split}): {item.evidence or 'near-duplicate'}"
        rows.append(
            {
                "photo": thumbnail_url(root / item.path),
                "path": item.path,
                "class": Path(item.path).parts[0],
                "score": float(item.score),
                "why": why,
            }
        )
    return pd.DataFrame(rows, columns=["photo", "path", "class", "score", "why"])


def _act_many(action: str, root: str, paths: list[str], target: str | None = None) -> None:
    """A bulk button's callback: one journaled edit for every selected photo, then a notice with Undo."""
    try:
        if action == "move":
            edit = edits.move_to_class(root, paths, str(target))
            text = f"Moved {len(paths)} photo(s) to {target}."
        elif action == "set_aside":
            edit = edits.set_aside(root, paths)
            text = f"Set {len(paths)} photo(s) aside (kept in the studio's quarantine folder)."
        else:
            edit = edits.keep(root, paths)
            text = f"Kept {len(paths)} photo(s): they will not be shown again."
        st.session_state[NOTICE_KEY] = ("success", text, edit.id)
    except StudioError as error:
        st.session_state[NOTICE_KEY] = ("error", str(error), None)
    st.session_state[_GENERATION] = st.session_state.get(_GENERATION, 0) + 1  # a fresh selection


def photo_history(root: Path, rel_path: str) -> list[dict[str, Any]]:
    """The journal's edits that touched one photo (moved it, set it aside, kept it), newest first."""
    wanted = str((root / rel_path).resolve())
    rows = []
    for edit in reversed(edits.history(root)):
        touched = rel_path in edit.paths or any(wanted in (a, b) for a, b in edit.moves)
        if touched:
            rows.append(
                {
                    "when (UTC)": edit.time.replace("T", " ")[:19],
                    "change": edit.describe(root),
                    "undone": bool(edit.undone_by),
                }
            )
    return rows


@st.dialog("Photo details", position="right", width="large")
def _details(root: Path, item: Any, run_dir: str | None) -> None:
    path = root / item.path
    st.markdown(f"**{md(item.path)}** · {md(item.kind.replace('_', ' '))} · score {item.score:.3f}")
    if item.evidence:
        st.caption(md(item.evidence))
    try:
        mtime = path.stat().st_mtime
    except OSError:
        st.caption("This photo is no longer there.")
        return
    left, right = st.columns(2)
    photo = cached.thumbnail(str(path), mtime, 360)
    if photo is not None:
        left.image(photo, caption="the photo", width="stretch")
    with right:
        if run_dir is None:
            st.caption(
                "No trained model on this dataset yet, so no heatmap: train one on the Train "
                "page to see which part of the photo its answer rests on."
            )
        else:
            heat = cached.heatmap(run_dir, str(path), mtime)
            if heat is None:
                st.caption("No heatmap: the newest run's model.keras could not be read.")
            else:
                st.image(
                    heat.overlay,
                    caption=md(f"Grad-CAM: {heat.label} ({heat.probability:.0%})"),
                    width="stretch",
                )
    if item.neighbours:
        st.markdown("**Nearest neighbours**")
        thumbs = [(cached.thumbnail(str(root / n), 0.0, 120), n) for n in item.neighbours]
        shown = [(t, n) for t, n in thumbs if t is not None]
        if shown:
            st.image([t for t, _ in shown], caption=[md(n) for _, n in shown], width=110)
    st.markdown("**History**")
    history = photo_history(root, item.path)
    if history:
        st.dataframe(history, hide_index=True, key="review_details_history")
    else:
        st.caption("No change to this photo yet.")


def render_findings_table(
    root: Path,
    findings: Sequence[Any],
    classes: Sequence[str],
    *,
    key: str,
    allowed: bool,
    run_dir: str | None,
) -> list[str]:
    """One kind of findings as a selectable table with bulk actions and a details panel.

    Args:
        root: the dataset folder.
        findings: the findings (most suspicious first).
        classes: the class folders photos can be moved to.
        key: a unique widget-key prefix.
        allowed: whether the actions are offered (the folder may be changed).
        run_dir: the newest finished run on this dataset (its model draws heatmaps), or None.

    Returns:
        The paths of the selected photos.
    """
    if not findings:
        st.caption("Nothing found.")
        return []
    frame = findings_frame(root, findings)
    generation = st.session_state.get(_GENERATION, 0)
    event = st.dataframe(
        frame,
        hide_index=True,
        key=f"{key}_table_{generation}",
        on_select="rerun",
        selection_mode="multi-row",
        row_height=THUMB_SIDE + 8,
        column_config={
            "photo": st.column_config.ImageColumn("photo", width="small"),
            "path": st.column_config.TextColumn("path", width="medium"),
            "score": st.column_config.ProgressColumn(
                "score", min_value=0.0, max_value=1.0, format="%.2f"
            ),
            "why": st.column_config.TextColumn("why", width="large"),
        },
    )
    rows = [r for r in event.selection.rows if 0 <= r < len(frame)]
    picked = [findings[r] for r in rows]
    paths = [f.path for f in picked]
    if len(findings) > TABLE_ROWS:
        st.caption(f"The {TABLE_ROWS} most suspicious of {len(findings)}; act on them to see the next.")
    st.caption(
        f"{len(paths)} selected. Tick rows (Shift-click for a range), then act on all of them at once; "
        "one Undo reverts the lot."
        if paths
        else "Tick rows to act on them together, or one row for its details."
    )
    cols = st.columns([2, 1, 1, 1, 1], vertical_alignment="bottom")
    details = cols[4].button(
        "Details", key=f"{key}_details", disabled=not picked, shortcut="Alt+O",
        icon=":material/right_panel_open:", help="The photo, its heatmap, neighbours and history",
    )  # fmt: skip
    if allowed:
        target = cols[0].selectbox("Move to", list(classes), key=f"{key}_target")
        cols[1].button(
            f"Move {len(paths) or ''}".strip(), key=f"{key}_move", disabled=not paths or target is None,
            on_click=_act_many, args=("move", str(root), paths, target), shortcut="Alt+M",
            icon=":material/drive_file_move:",
        )  # fmt: skip
        cols[2].button(
            "Set aside", key=f"{key}_aside", disabled=not paths, shortcut="Alt+A",
            on_click=_act_many, args=("set_aside", str(root), paths),
        )  # fmt: skip
        cols[3].button(
            "Keep", key=f"{key}_keep", disabled=not paths, shortcut="Alt+K",
            on_click=_act_many, args=("keep", str(root), paths),
        )  # fmt: skip
    if details and picked:
        _details(root, picked[0], run_dir)
    return paths
