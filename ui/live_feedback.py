"""Live mode's feedback: "that's wrong, save it as X" (a frame or a burst) and "Retrain now".

Frames go into the dataset the run was trained on, through the data loop's
journaled `engine.data.edits.add_photos` (undoable on the Dataset page). The
studio's own datasets (the demo copy, imports) take them at once; a user's
own folder only after the opt-in (`edits.allow_edits`), asked for here too.
The Dataset page rescans when a class folder changes, so the frames show
there at once. "Retrain now" starts a training with the run's own settings on
that dataset: the bottleneck cache is keyed by each photo's content, so only
the new frames have features computed. The page then follows that training
(a fragment, once a second) and, as soon as it is done, makes its model the
live one: the camera keeps playing, the next frames are labelled by the new
model. Its exports follow in the job after that and are never waited for.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from engine.core.errors import StudioError
from engine.core.rundir import RunDir
from engine.data import edits
from engine.serve.live import MAX_BURST, LiveClassifier, encode_jpeg
from ui import cached
from ui.errors import show_error, shown_path, user_errors
from ui.render import start_job
from ui.safe import md

BURST_EVERY_S = 0.1
# A burst waits for its frames at most this long beyond what the camera needs to send them.
BURST_GRACE_S = 10.0
# The training "Retrain now" started in this tab, followed until its model goes live.
RETRAINING_KEY = "live_retraining"
# The Predict page's run picker: the new run is chosen there, so the whole page follows it.
PREDICT_RUN_KEY = "predict_run"
FOLLOW_EVERY_S = 1.0


def dataset_of(run: RunDir) -> Path:
    """The folder a run was trained on: its settings' `image_dir`, or the demo for none."""
    image_dir = (run.read_request() or run.read_config()).get("image_dir")
    return Path(image_dir) if image_dir else Path(cached.demo_dataset_root())


def render_feedback(live: LiveClassifier, run: RunDir, *, playing: bool) -> None:
    """The save-as and retrain controls under the live view.

    Args:
        live: this tab's classifier (its newest frame and bursts).
        run: the run whose model is live (its dataset and settings).
        playing: whether the camera is playing (saving needs frames).
    """
    root = dataset_of(run)
    st.subheader("Wrong? Teach it")
    st.caption(f"Frames are added to the dataset this model learnt from: {md(shown_path(root))}")
    if not root.is_dir():
        st.info("That dataset is gone, so frames cannot be added to it.", icon=":material/info:")
        return
    if not edits.edits_allowed(root):
        st.info(
            "This is your own folder: the studio adds photos to it only if you allow it. Every "
            "addition is journaled and can be undone on the Dataset page.",
            icon=":material/lock:",
        )
        if st.button("Allow adding photos to this folder", key="live_allow"):
            edits.allow_edits(root)
            st.rerun()
        return
    name_col, new_col, count_col = st.columns([2, 2, 1])
    chosen = name_col.selectbox("Save as class", live.labels, key="live_class")
    typed = new_col.text_input(
        "…or a new class", key="live_new_class", help="A new class folder is made for it."
    )
    class_name = typed.strip() or chosen
    count = count_col.number_input("Burst size", 2, MAX_BURST, 10, key="live_burst")
    one, burst, again = st.columns(3)
    if one.button(f"Save this frame as {class_name}", key="live_save"):
        frame = live.latest_frame()
        if frame is None:
            st.info("No frame yet: start the camera and wait for the video.", icon=":material/info:")
        else:
            _save(root, class_name, [frame])
    if burst.button(f"Save {count} frames", key="live_save_burst"):
        frames = _collect_burst(live, int(count)) if playing else []
        if not playing:
            st.info("Start the camera first: a burst takes the next frames.", icon=":material/info:")
        elif frames:
            _save(root, class_name, frames)
    retraining = st.session_state.get(RETRAINING_KEY)
    if again.button("Retrain now", key="live_retrain", type="primary", disabled=bool(retraining)):
        retraining = _retrain(run, root)
    if retraining:
        _follow_retraining(retraining)


def _collect_burst(live: LiveClassifier, count: int) -> list[Any]:
    """The next `count` frames, BURST_EVERY_S apart, with a bar while they come."""
    live.start_burst(count, every_s=BURST_EVERY_S)
    bar = st.progress(0.0, text=f"Collecting {count} frames…")
    deadline = time.monotonic() + count * BURST_EVERY_S + BURST_GRACE_S
    while (frames := live.take_burst()) is None:
        have, _ = live.burst_progress()
        bar.progress(have / count, text=f"Collecting frames: {have} of {count}")
        if time.monotonic() > deadline:
            bar.empty()
            st.warning(
                f"Only {have} of {count} frames came from the camera; nothing was saved. Is it playing?",
                icon=":material/warning:",
            )
            live.start_burst(1, every_s=0.0)  # end the collection
            live.take_burst()
            return []
        time.sleep(0.05)  # frames arrive from the video worker; poll for them
    bar.empty()
    return frames


def _save(root: Path, class_name: str, frames: list[Any]) -> None:
    with user_errors("Cannot save the frames: "):
        saved = edits.add_photos(
            root, class_name, [encode_jpeg(f) for f in frames], name_prefix="camera"
        )
    noun = "frame" if len(saved) == 1 else "frames"
    st.success(
        f"Saved {len(saved)} {noun} as **{md(class_name)}** ({md(saved[0].name)}"
        f"{'…' if len(saved) > 1 else ''}); they are on the Dataset page now.",
        icon=":material/add_a_photo:",
    )


def _retrain(run: RunDir, root: Path) -> str:
    from engine.train.config import PATH_FIELDS, TrainConfig

    with user_errors("Cannot retrain: "):
        # a run started from the dashboard has its request; one from the CLI, its config.json
        settings = run.read_request() or run.read_config()
        if not settings:
            raise StudioError(f"run {run.run_id} has no settings to repeat; start one on the Train page")
        # the same settings on the dataset the frames went to; no copies over the first run's outputs
        keep = {"image_dir": str(root), "bottleneck_dir": settings.get("bottleneck_dir")}
        config = TrainConfig.from_dict({**settings, **dict.fromkeys(PATH_FIELDS), **keep})
        job = start_job(cached.job_registry(), config)
    st.session_state[RETRAINING_KEY] = job.run_id
    return job.run_id


def _follow_retraining(run_id: str) -> None:
    """The retraining's progress; once it is done, its model is the live one (a full rerun)."""
    from engine.core.runstate import ACTIVE_STATES
    from ui import state
    from ui.follow import follow

    @st.fragment(run_every=FOLLOW_EVERY_S)
    def retraining() -> None:
        job = cached.job_registry().get(run_id)
        now = job.state
        if now == "done":
            del st.session_state[RETRAINING_KEY]
            # reruns the page: the camera goes on, labelled by the new model
            state.switch_run_picker(PREDICT_RUN_KEY, run_id)
        if now not in ACTIVE_STATES:
            del st.session_state[RETRAINING_KEY]
            error = job.run_dir.read_status().get("error") or "see its log on the Runs page"
            show_error(f"Retraining {run_id} ended {now}: {error}", prefix="")
            return
        fraction, text = _progress_of(follow(job.run_dir))
        st.progress(
            fraction,
            text=md(f"Retraining {run_id}: {text}") + " · the new model goes live when it is done",
        )

    retraining()


def _progress_of(followed: Any) -> tuple[float, str]:
    """The training's latest progress as a fraction and "phase: done/total unit, time left"."""
    from engine.core.progress import format_duration

    step, progress = followed.last_step, followed.progress
    if step is not None:
        total = step.get("total_steps") or step["step"]
        return min(1.0, step["step"] / total), f"step {step['step']} of {total}"
    if progress and progress.get("total"):
        done, total = int(progress.get("done") or 0), int(progress["total"])
        phase = str(progress.get("phase", "")).replace("-", " ")
        unit = progress.get("unit", "images")
        left = format_duration(progress.get("eta_s"))
        return min(1.0, done / total), f"{phase} {done}/{total} {unit}, {left} left"
    return 0.0, f"{followed.phase or 'starting'}…"
