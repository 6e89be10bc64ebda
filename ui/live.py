"""The Predict page's live mode: the browser's camera through streamlit-webrtc, labelled frame by frame.

The video worker of streamlit-webrtc calls `_callback` with each frame; the
frame logic (one prediction at a time, frames dropped rather than queued,
smoothing) is `engine.serve.live.LiveClassifier`, which never touches
Streamlit. Each tab gets a classifier of its own with a predictor of its own
(a LiteRT interpreter must not be called from two threads at once, and the
page's cached predictor answers uploads in the script thread). The label,
its probability and the bars are redrawn by a fragment twice a second while
the camera plays. The presenter view shows the same, large, for a projector.

No STUN/TURN server: `rtc_configuration={"iceServers": []}` (the studio runs
on localhost or a LAN; nothing is asked of a server on the internet).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import streamlit as st

from engine.serve.live import LiveClassifier, LiveReading

KEY = "predict_live"
_CLASSIFIER_KEY = "predict_live_classifier"
_PLAYING_KEY = "predict_live_playing"
RTC_CONFIGURATION: dict[str, Any] = {"iceServers": []}
REFRESH_S = 0.5
# What the component says inside its frame when the camera cannot be used (its defaults are terse).
TRANSLATIONS = {
    "start": "Start the camera",
    "stop": "Stop",
    "device_ask_permission": "Allow this page to use your camera (the browser asks at the top of the window).",
    "device_access_denied": "The browser blocked the camera. Allow it for this site (the camera icon "
    "in the address bar, or the site settings), then press Start again",
    "device_not_available": "No camera found. Connect a camera (or close the program using it), "
    "then press Start again",
    "media_api_not_available": "This browser gives no camera to this page: open the studio on "
    "localhost or over https",
}


# The component shows getUserMedia's error inside its frame by name only (and never tells the
# server): what each name means and what to do is said here, beside it.
CAMERA_HELP = """Press **Start the camera** and allow the camera if the browser asks.

- **NotAllowedError** in the video box: the browser blocked the camera. Allow it for this
  site (the camera icon in the address bar, or the site settings), then press Start again.
- **NotFoundError**: no camera was found. Connect one (or close the program using it), then
  press Start again.
- **mediaDevices is undefined**: the browser gives cameras only to pages on localhost or https.
"""


# Style only (st.html sends it to the page, not into an element): the sidebar gives its width back.
PRESENTER_CSS = "<style>section[data-testid='stSidebar'] {display: none;}</style>"


def classifier(run_dir: Path, model_mtime: float, *, unknown: bool = True) -> LiveClassifier:
    """This tab's live classifier for a run's model, loaded once per model file.

    Args:
        run_dir: the run folder.
        model_mtime: the model file's mtime (a retrained model is loaded again).
        unknown: answer `unknown` for frames the run's rule rejects. Defaults to True.

    Returns:
        The classifier (its own predictor, so the video worker shares no interpreter).

    Raises:
        StudioError: the run has no usable model.
    """
    from engine.serve.inference import Predictor

    key = (str(run_dir), model_mtime, unknown)
    held = st.session_state.get(_CLASSIFIER_KEY)
    if held is None or held[0] != key:
        held = (key, LiveClassifier.from_predictor(Predictor.from_run(run_dir), unknown=unknown))
        st.session_state[_CLASSIFIER_KEY] = held
    return held[1]


def _callback(live: LiveClassifier) -> Any:
    def on_frame(frame: Any) -> Any:
        # runs in streamlit-webrtc's video worker thread: no st.* here
        live.process(frame.to_ndarray(format="rgb24"))
        return frame

    return on_frame


def render_stream(live: LiveClassifier, *, presenter: bool) -> bool:
    """The camera beside its live label; returns whether the camera is playing.

    Args:
        live: this tab's classifier.
        presenter: the large layout for a projector.
    """
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    video, readout = st.columns([3, 2] if presenter else [1, 1], gap="large")
    with video:
        context = webrtc_streamer(
            key=KEY,
            mode=WebRtcMode.SENDRECV,
            rtc_configuration=RTC_CONFIGURATION,
            media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
            video_frame_callback=_callback(live),
            async_processing=True,  # the worker takes the newest frame; older ones are skipped
            translations=TRANSLATIONS,
        )
    playing = bool(context.state.playing)
    if playing and not st.session_state.get(_PLAYING_KEY):
        live.reset()  # a new stream starts with no label and fresh counters
    st.session_state[_PLAYING_KEY] = playing
    with readout:
        _readout(live, presenter=presenter, every=REFRESH_S if playing else None)
    if not playing:
        st.markdown(CAMERA_HELP)
    return playing


def _readout(live: LiveClassifier, *, presenter: bool, every: float | None) -> None:
    @st.fragment(run_every=every)
    def readout() -> None:
        _draw(live.reading(), presenter=presenter)

    readout()


def _draw(reading: LiveReading, *, presenter: bool) -> None:
    label_rem, bar_count = (7.0, 3) if presenter else (3.0, 5)
    if reading.label is None:
        st.html(_label_html("…", "waiting for the camera", label_rem))
        return
    if reading.unknown:
        names = ", ".join(reading.labels)
        st.html(_label_html("unknown", f"none of {names}", label_rem))
    else:
        st.html(_label_html(reading.label, f"{reading.probability:.0%}", label_rem))
    for name, probability in reading.top(bar_count):
        st.progress(min(1.0, max(0.0, probability)), text=f"{_plain(name)} · {probability:.0%}")
    st.caption(
        f"{reading.rate:.1f} predictions/s · {reading.latency_ms:.0f} ms from frame to label · "
        f"{reading.dropped} of {reading.frames} frames skipped while the model was busy"
    )
    if reading.error:
        st.warning(
            f"The last frame could not be labelled: {_plain(reading.error)}", icon=":material/warning:"
        )


def _label_html(label: str, confidence: str, size_rem: float) -> str:
    return (
        f'<div data-testid="live-label" data-label="{html.escape(label, quote=True)}" '
        f'style="font-size:{size_rem}rem;font-weight:700;line-height:1.1;word-break:break-word">'
        f"{html.escape(label)}</div>"
        f'<div data-testid="live-confidence" style="font-size:{size_rem / 2.2:.2f}rem;opacity:0.8">'
        f"{html.escape(confidence)}</div>"
    )


def _plain(text: str) -> str:
    from ui.safe import md

    return md(text)


def render_live_mode(run: Any, model_file: Path) -> None:
    """Live mode: the presenter switch, the camera with its label, then the feedback controls.

    Args:
        run: the chosen run (`engine.core.rundir.RunDir`).
        model_file: the model file the page loaded (its mtime keys the classifier).
    """
    from engine.core.errors import StudioError
    from ui.errors import show_error
    from ui.live_feedback import render_feedback

    presenter = st.toggle(
        "Presenter view",
        key="predict_presenter",
        help="The whole window for the video and a large label, for a projector (the sidebar is "
        "hidden until you switch this off).",
    )
    if presenter:
        st.html(PRESENTER_CSS)
    unknown = st.toggle(
        "Answer unknown",
        value=True,
        key="predict_live_unknown",
        help="Say `unknown` when the camera shows none of the classes (the run's rule, set on its "
        "validation photos; it takes a few frames in a row to enter or leave). Off: always name "
        "the nearest class. Runs trained before this rule existed always name a class.",
    )
    try:
        live = classifier(run.path, model_file.stat().st_mtime, unknown=unknown)
    except (StudioError, OSError) as error:
        show_error(error, prefix="Cannot start live predictions: ")
        return
    playing = render_stream(live, presenter=presenter)
    if not presenter:
        render_feedback(live, run, playing=playing)
