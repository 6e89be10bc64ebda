"""The Train page's choice of where features are computed: this machine or a Ray cluster.

The cluster is checked by `python -m engine cluster` in a subprocess with a
deadline (Ray is never imported into the dashboard, and a cluster that does
not answer cannot block the page); its nodes, CPUs and GPUs are shown, or
the reason it cannot be used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import streamlit as st

from engine.core.cluster import ADDRESS_ENV, check_address
from engine.core.errors import StudioError
from engine.train.config import TrainConfig
from ui.errors import show_error
from ui.safe import md

PLACES = ("this machine", "Ray cluster")
CHECK_TIMEOUT_S = 60.0
_UNEXPECTED = "the cluster check failed unexpectedly; the server's log has the details"


@st.cache_data(ttl=30, show_spinner="Asking the Ray cluster for its nodes…")
def cluster_status(address: str) -> tuple[dict[str, Any] | None, str | None]:
    """The cluster's nodes as `python -m engine cluster --json` reports them, or why not.

    Returns:
        `(info, None)` or `(None, reason)`; the reason never holds a traceback.
    """
    command = [sys.executable, "-m", "engine", "cluster", "--ray", address, "--json",
               "--timeout", str(CHECK_TIMEOUT_S / 2)]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"the cluster did not answer within {CHECK_TIMEOUT_S:g} s"
    if done.returncode == 0:
        try:
            return json.loads(done.stdout.strip().splitlines()[-1]), None
        except (ValueError, IndexError):
            return None, _UNEXPECTED
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    return None, errors[-1].removeprefix("error: ") if errors else _UNEXPECTED


def render_compute_choice(*, disabled: bool = False) -> tuple[str | None, bool]:
    """Radio "this machine" / "Ray cluster", the address, and the cluster's nodes.

    Returns:
        `(address or None, usable)`: usable is False when a cluster was chosen but
        cannot be used (training should not start then).
    """
    place = st.radio(
        "Compute the features on", PLACES, horizontal=True, key="train_compute",
        disabled=disabled, help=TrainConfig.setting("ray").help,
    )  # fmt: skip
    if place == PLACES[0]:
        return None, True
    address = st.text_input(
        "Ray cluster at", value=os.environ.get(ADDRESS_ENV, ""), key="train_ray_address",
        placeholder="HOST:PORT of the head, or local", disabled=disabled,
    ).strip()  # fmt: skip
    if not address:
        st.info("Give the head's HOST:PORT (as `ray start --head` printed it), or `local`.")
        return None, False
    try:
        check_address(address)
    except StudioError as error:
        show_error(error, prefix="Cannot use this address: ")
        return None, False
    info, reason = cluster_status(address)
    if info is None:
        st.error(
            f"Cannot use the Ray cluster at {md(address)}: {md(reason)}", icon=":material/cloud_off:"
        )
        return address, False
    alive = [node for node in info["nodes"] if node["alive"]]
    st.success(
        f"Ray cluster at {md(address)}: {len(alive)} node(s), {info['cpus']:g} CPU(s), "
        f"{info['gpus']:g} GPU(s)",
        icon=":material/hub:",
    )
    st.dataframe(
        [{"node": n["node_id"][:12], "address": n["address"], "CPUs": n["cpus"], "GPUs": n["gpus"],
          "state": "alive" if n["alive"] else "dead"} for n in info["nodes"]],
        hide_index=True,
    )  # fmt: skip
    return address, True
