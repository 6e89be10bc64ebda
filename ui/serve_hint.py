"""Predict's "Serve this model" expander: the `serve` command and a `curl` call for the chosen run."""

from __future__ import annotations

import shlex
from pathlib import Path

import streamlit as st

from engine.serve.server import DEFAULT_PORT
from engine.serve.server_guard import DEFAULT_HOST, TOKEN_ENV


def serve_commands(run_dir: str | Path) -> tuple[str, str]:
    """The shell command that serves `run_dir` and a `curl` call that asks it about a photo.

    Args:
        run_dir: the run folder.

    Returns:
        `(serve command, curl command)`.
    """
    serve = f"python -m engine serve --graph {shlex.quote(str(run_dir))} --port {DEFAULT_PORT}"
    curl = f"curl -F file=@photo.jpg 'http://{DEFAULT_HOST}:{DEFAULT_PORT}/predict?top_k=3'"
    return serve, curl


def render_serve_hint(run_dir: str | Path) -> None:
    """An expander showing how to call this run's model over HTTP from another program.

    Args:
        run_dir: the selected run's folder.
    """
    serve, curl = serve_commands(run_dir)
    with st.expander("Serve this model over HTTP", icon=":material/api:"):
        st.caption(
            "Run this in a terminal, in the studio's folder: the model answers on this machine "
            "only (LiteRT, no TensorFlow)."
        )
        st.code(serve, language="bash")
        st.caption("Then ask it about a photo (several `-F file=@...` for several photos):")
        st.code(curl, language="bash")
        st.caption(
            f"To listen beyond this machine add `--host 0.0.0.0` and set `{TOKEN_ENV}` first; "
            "every request must then send `-H 'Authorization: Bearer <token>'`."
        )
