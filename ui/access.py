"""Who may use the dashboard: loopback only, or a password plus fenced data folders.

On 127.0.0.1 (the default in .streamlit/config.toml) the dashboard is the
user's own tool and asks nothing. Listening on anything else
(`--server.address 0.0.0.0`, a LAN address, or no address at all) means
visitors: then it serves nothing until both `RETRAIN_STUDIO_DATA_ROOTS` (the
folders a visitor may read datasets from) and a password (Streamlit secrets
`password`, or `RETRAIN_STUDIO_PASSWORD`) are set, says which is missing, and
asks each new session for the password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

import streamlit as st

from engine.core.paths import data_roots
from engine.core.ports import is_loopback

PASSWORD_ENV = "RETRAIN_STUDIO_PASSWORD"
SECRET_KEY = "password"
_SIGNED_IN = "access_signed_in"
# A wrong password costs this long, so guessing is slow.
WRONG_PASSWORD_DELAY_S = 1.0


def listen_address() -> str | None:
    """The address the server listens on (`server.address`), None for every interface."""
    return st.get_option("server.address")


def exposed() -> bool:
    """Whether the app can be reached from other machines."""
    return not is_loopback(listen_address())


def configured_password() -> str | None:
    """The password visitors must give: Streamlit secrets `password`, else `RETRAIN_STUDIO_PASSWORD`."""
    try:
        secret = st.secrets[SECRET_KEY]
    except (KeyError, FileNotFoundError):  # no secrets file raises a FileNotFoundError subclass
        secret = None
    value = secret if isinstance(secret, str) and secret else os.environ.get(PASSWORD_ENV, "")
    return value or None


def password_matches(given: str, expected: str) -> bool:
    """Compare in constant time (digests of equal length, `hmac.compare_digest`)."""
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given.encode()).digest(), digest(expected.encode()).digest())


def missing_for_exposure() -> list[str]:
    """What must be set before an exposed app may serve, one sentence each (empty when ready)."""
    missing = []
    if data_roots() is None:
        missing.append(
            "**RETRAIN_STUDIO_DATA_ROOTS** is not set: set it to the folders visitors may read "
            f"datasets from (several separated by `{os.pathsep}`)."
        )
    if configured_password() is None:
        missing.append(
            f"**No password**: set `{SECRET_KEY}` in `.streamlit/secrets.toml` or the environment "
            f"variable **{PASSWORD_ENV}**."
        )
    return missing


def allowed() -> bool:
    """Whether this session may see the pages: a loopback app, or a signed-in session."""
    return not exposed() or bool(st.session_state.get(_SIGNED_IN)) and not missing_for_exposure()


def gate() -> None:
    """Let the script go on only when `allowed()`; else show why not and stop it.

    An exposed app with something missing shows what to set and stops; with
    both set, it shows the sign-in form until the right password is given.
    The router calls `st.navigation` first (hidden until signed in), so a deep
    link such as /train opens that page once signed in.
    """
    if allowed():
        return
    missing = missing_for_exposure()
    if missing:
        st.title("Retrain Studio is not shared yet")
        st.error(
            "This dashboard listens beyond this machine, so it serves nothing until whoever "
            "runs it sets:\n\n" + "\n".join(f"- {item}" for item in missing),
            icon=":material/lock:",
        )
        st.caption("Then restart it. See README, “Sharing the dashboard on a network”.")
        st.stop()
    st.title("Retrain Studio")
    with st.form("sign_in"):
        given = st.text_input("Password", type="password", key="access_password")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if submitted:
        expected = configured_password()
        if expected is not None and password_matches(given, expected):
            st.session_state[_SIGNED_IN] = True
            st.rerun()
        time.sleep(WRONG_PASSWORD_DELAY_S)
        st.error("Wrong password.", icon=":material/error:")
    st.stop()
