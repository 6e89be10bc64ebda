"""The Dataset page's "Label these next": unsorted photos in the order that teaches the model most.

The photos of the dataset's `unsorted/` folder (or of another folder the user
names, within the allowed roots) are ranked by `engine.train.review.label_next`
(cleanlab's ActiveLab on a head fitted to the labelled photos' cached
features) and shown best first, each with the class the model suggests:
*This is CLASS* files it in one click, another class is one pick away. Filing
goes through the journaled edits (`engine.data.unsorted.file_unsorted`: moved
from `unsorted/`, copied from a folder outside), with Undo; the ranking is
redone at once on the warm cache. *Retrain now* starts a training on the
dataset as it is now. The expander shows what the order buys: the measured
curve on the digits (bench/bench_label_next.py) and, on demand, on this dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from engine.core.errors import StudioError
from engine.data import edits
from ui import cached
from ui.errors import user_errors
from ui.photo_actions import class_folders, render_notice
from ui.render import progress_callback, render_chart, start_job
from ui.safe import md

NOTICE = "label_next_notice"
SHOWN = 8
COLUMNS = 4
RESULT_KEY = "label_next_result"
CURVE_KEY = "label_next_curve"
DIGITS_CURVE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "label-next-digits.json"


def _file(root: str, path: str, target: str, folder: str | None) -> None:
    """A filing button's callback: one journaled edit, then a notice with Undo."""
    from engine.data.unsorted import file_unsorted

    try:
        edit = file_unsorted(root, [path], target, folder=folder)
        st.session_state[NOTICE] = ("success", f"Filed {Path(path).name} as {target}.", edit.id)
    except StudioError as error:
        st.session_state[NOTICE] = ("error", str(error), None)


def _ranked(root: Path, folder: Path | None) -> Any:
    """The ranking, redone when the dataset, the unsorted folder or the journal changes."""
    from engine.train.review.label_next import label_next

    journal = edits.journal_file(root)
    stamp = (
        str(root),
        str(folder),
        cached.folder_signature(root),
        cached.folder_signature(folder or root / "unsorted"),
        journal.stat().st_size if journal.exists() else 0,
    )
    stored = st.session_state.setdefault(RESULT_KEY, {})
    if stored.get("stamp") != stamp:
        result = label_next(
            root, unsorted_dir=folder, progress=progress_callback("Ranking the unsorted photos")
        )
        stored.clear()
        stored.update(stamp=stamp, result=result)
    return stored["result"]


def _retrain(root: Path, run_dir: str | None) -> None:
    """Start a training on the dataset as it is now: the newest run's settings, or the defaults."""
    from engine.core.rundir import RunDir
    from engine.train.config import PATH_FIELDS, TrainConfig

    with user_errors("Cannot retrain: "):
        settings: dict[str, Any] = {}
        if run_dir:
            run = RunDir(run_dir)
            settings = run.read_request() or run.read_config()
        keep = {"image_dir": str(root), "bottleneck_dir": settings.get("bottleneck_dir")}
        config = TrainConfig.from_dict({**settings, **dict.fromkeys(PATH_FIELDS), **keep})
        job = start_job(cached.job_registry(), config)
    st.success(
        f"Training {md(job.run_id)} started on the photos labelled so far; only the new ones need "
        "features. Follow it on the Train page.",
        icon=":material/model_training:",
    )
    st.page_link("app_pages/train.py", label="Follow the training", icon=":material/model_training:")


def _render_curve(root: Path, validation_pct: int, testing_pct: int) -> None:
    from ui.figures import label_order_figure

    with st.expander("How much this order helps", expanded=False):
        try:
            digits = json.loads(DIGITS_CURVE.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            digits = None
        if digits:
            st.caption(
                f"Measured on {md(digits.get('dataset', 'the digits'))}: test accuracy as photos are "
                "labelled in this order or at random, from 2 per class, re-ranked after every 10."
            )
            render_chart(label_order_figure(digits), key="label_next_digits_curve")
        if st.button("Measure on this dataset", key="label_next_measure", icon=":material/monitoring:"):
            from engine.train.review.label_next import measure_on_dataset

            with user_errors("Cannot measure: "):
                st.session_state[CURVE_KEY] = (
                    str(root),
                    measure_on_dataset(
                        root,
                        validation_percentage=validation_pct,
                        testing_percentage=testing_pct,
                        progress=progress_callback(
                            "Labelling this dataset's photos again, in both orders"
                        ),
                    ),
                )
        mine = st.session_state.get(CURVE_KEY)
        if mine and mine[0] == str(root):
            st.caption(
                f"This dataset: its test split ({mine[1]['test_photos']} photos) scores, its other "
                "photos play the unsorted ones."
            )
            render_chart(label_order_figure(mine[1]), key="label_next_own_curve")


def render_label_next(
    root: Path, dataset: Any, validation_pct: int, testing_pct: int, *, run_dir: str | None
) -> None:
    """The "Label these next" section of the Dataset page.

    Args:
        root: the dataset folder.
        dataset: its scan.
        validation_pct: the split's validation share.
        testing_pct: the split's test share.
        run_dir: the newest finished run on this dataset (its settings for *Retrain now*), or None.
    """
    from engine.data.sources import resolve_local_folder

    render_notice(root, key=NOTICE)
    other = st.text_input(
        "Unsorted photos elsewhere (optional)", key="label_next_folder",
        placeholder="a folder outside the dataset; its photos are copied in when filed",
        help="Leave empty for the dataset's own unsorted/ folder, which is never a class.",
    ).strip()  # fmt: skip
    if len(dataset.labels) < 2:
        st.caption("Label these next needs two classes with photos to learn from.")
        return
    with user_errors("Cannot rank the unsorted photos: "):
        result = _ranked(root, resolve_local_folder(other) if other else None)
    if not result.suggestions:
        st.caption(
            f"Nothing to label: put photos you have not sorted yet in {md(result.folder.name)}/ "
            "(it is not a class) and they show here, the most useful to label first."
        )
        _render_curve(root, validation_pct, testing_pct)
        return
    st.caption(
        f"{len(result.suggestions)} unsorted photo(s), the one the model is least sure of first "
        f"(cleanlab's ActiveLab, from {result.labelled} labelled photos). Filing one re-ranks the rest."
    )
    allowed = edits.edits_allowed(root)
    if not allowed:
        st.caption(
            "Allow the studio to move files in this folder (under Review) to file photos from here."
        )
    classes = class_folders(root)
    base = root if result.inside else result.folder
    columns = st.columns(COLUMNS)
    for n, item in enumerate(result.suggestions[:SHOWN]):
        with columns[n % COLUMNS]:
            path = base / item.path
            try:
                png = cached.thumbnail(str(path), path.stat().st_mtime, 200)
            except OSError:
                png = None
            if png is not None:
                st.image(png, width="stretch")
            st.caption(
                md(
                    f"#{item.rank} {item.path}: looks like {item.suggested_folder} ({item.confidence:.0%})"
                )
            )
            if not allowed:
                continue
            where = None if result.inside else str(result.folder)
            st.button(
                f"This is {item.suggested_folder}", key=f"label_next_yes_{n}", type="primary",
                on_click=_file, args=(str(root), item.path, item.suggested_folder, where),
            )  # fmt: skip
            others = [c for c in classes if c != item.suggested_folder]
            if others:
                pick = st.selectbox("or", others, key=f"label_next_to_{n}", label_visibility="collapsed")
                st.button(
                    f"File as {pick}", key=f"label_next_file_{n}",
                    on_click=_file, args=(str(root), item.path, pick, where),
                )  # fmt: skip
    if len(result.suggestions) > SHOWN:
        st.caption(f"The first {SHOWN} of {len(result.suggestions)}; file them to see the next.")
    if st.button("Retrain now", key="label_next_retrain", icon=":material/model_training:"):
        _retrain(root, run_dir)
    _render_curve(root, validation_pct, testing_pct)
