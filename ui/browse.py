"""The Dataset page's classes, a page at a time: search by name, counts, a row of thumbnails each.

Drawing every class at once does not scale (500 classes were 3,000
thumbnails and 17 s); one page of classes keeps the page quick whatever the
dataset holds. Every class stays reachable: by searching its name, by paging,
and in the table of all classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from ui import cached
from ui.errors import public_text
from ui.figures import split_counts_figure
from ui.render import render_chart
from ui.safe import md

PAGE_SIZES = (12, 24, 48)
# One row of thumbnails per class on a laptop screen.
SAMPLES_PER_CLASS = 6
# Messages of one kind shown in full; the rest fold into an expander.
MESSAGES_SHOWN = 5


def matching_classes(classes: Sequence[Any], query: str) -> list[Any]:
    """The classes whose label or folder name contains `query` (case-insensitive); all when empty.

    Args:
        classes: `engine.data.dataset.ClassInfo` rows.
        query: what was typed.

    Returns:
        The matches, in the dataset's order.
    """
    needle = query.strip().casefold()
    if not needle:
        return list(classes)
    return [c for c in classes if needle in c.label.casefold() or needle in c.folder.casefold()]


def page_count(count: int, size: int) -> int:
    """How many pages of `size` items `count` items fill (at least 1, so an empty list has a page)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size!r}")
    return max(1, -(-count // size))


def page_bounds(count: int, size: int, page: int) -> tuple[int, int]:
    """`[start, stop)` of page `page` (1-based, clamped to the pages there are) of `count` items.

    Args:
        count: how many items.
        size: items a page.
        page: the page wanted.

    Returns:
        The slice bounds; `(0, 0)` for no items.
    """
    start = (min(max(page, 1), page_count(count, size)) - 1) * size
    return start, min(count, start + size)


def render_messages(messages: Sequence[str], kind: str) -> None:
    """Errors or warnings from a scan: the first few as alerts, the rest folded away.

    A 1,000-class dataset can give a warning per class; a thousand alerts
    would bury the page.

    Args:
        messages: plain-text messages (escaped here).
        kind: "error" or "warning".
    """
    alert, icon = (
        (st.error, ":material/error:") if kind == "error" else (st.warning, ":material/warning:")
    )
    for message in messages[:MESSAGES_SHOWN]:
        alert(public_text(message), icon=icon)
    rest = messages[MESSAGES_SHOWN:]
    if rest:
        with st.expander(f"{len(rest):,} more {kind}s"):
            st.dataframe(pd.DataFrame({kind: list(rest)}), hide_index=True, key=f"dataset_more_{kind}s")


def render_class_browser(dataset: Any) -> None:
    """Search box, page picker, the page's split chart and thumbnails, and a table of every class.

    Args:
        dataset: an `engine.data.dataset.Dataset`.
    """
    search, size_col, page_col = st.columns([3, 1, 1])
    query = search.text_input(
        "Find a class", key="dataset_class_query", placeholder="part of a class or folder name"
    )
    size = size_col.selectbox("Classes a page", PAGE_SIZES, key="dataset_class_page_size")
    matches = matching_classes(dataset.classes, query)
    pages = page_count(len(matches), size)
    # a new search or page size starts again at page 1 (a widget of its own)
    page = page_col.number_input(
        f"Page (of {pages:,})", 1, pages, 1, key=f"dataset_class_page_{size}_{query.strip().casefold()}"
    )
    start, stop = page_bounds(len(matches), size, int(page))
    shown = matches[start:stop]
    if not shown:
        st.info(f"No class name contains “{md(query.strip())}”.", icon=":material/search_off:")
        return
    st.caption(f"Classes {start + 1:,}–{stop:,} of {len(matches):,}" + (" matching" if query else ""))
    render_chart(split_counts_figure(shown), key="dataset_counts")
    render_sample_grid(dataset, shown)
    with st.expander(f"All {len(dataset.classes):,} classes as a table"):
        st.dataframe(
            pd.DataFrame(
                [vars(c) for c in dataset.classes],
                columns=["label", "folder", "count", "train", "validation", "test"],
            ),
            hide_index=True,
            key="dataset_classes",
        )


def render_sample_grid(
    dataset: Any, classes: Sequence[Any], *, per_class: int = SAMPLES_PER_CLASS, max_side: int = 120
) -> None:
    """One row of thumbnails (cached) for each of `classes`, with its name and count above.

    Args:
        dataset: an `engine.data.dataset.Dataset`.
        classes: the `ClassInfo` rows to draw.
        per_class: thumbnails per class. Defaults to SAMPLES_PER_CLASS.
        max_side: thumbnail size in pixels. Defaults to 120.
    """
    wanted = {c.label for c in classes}
    by_label: dict[str, list[Any]] = {}
    for record in dataset.images:
        if record.label in wanted:
            by_label.setdefault(record.label, []).append(record)
    for info in classes:
        folder = "" if info.folder == info.label else f" · folder {md(info.folder)}"
        st.markdown(f"**{md(info.label)}**{folder} · {info.count} photos")
        paths = [Path(r.path) for r in by_label.get(info.label, [])[:per_class]]
        pngs = cached.thumbnails(tuple(map(str, paths)), tuple(map(_mtime, paths)), max_side)
        thumbs = [png for png in pngs if png is not None]
        captions = [md(path.name) for path, png in zip(paths, pngs, strict=True) if png is not None]
        if thumbs:
            st.image(thumbs, caption=captions, width=max_side)
        else:
            st.caption("No readable photos in this class.")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
