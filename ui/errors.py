"""What a browser sees when something fails: a message, never a traceback or a server path.

- A user error (`StudioError`, or an `OSError` that input caused: a name
  clash or a name too long inside a zip) is shown as its message.
- Anything else is logged with its traceback on the server (stderr, i.e. the
  terminal running `streamlit run`, and `<home>/logs/dashboard.log`) under a
  short reference, and the page says only that reference and where the log is.
- Every message goes through `public_text`: server paths are replaced by names
  when the app is exposed (`ui.access.exposed`), and the text is
  Markdown-escaped (`ui.safe.md`).

`client.showErrorDetails = "none"` (.streamlit/config.toml) is the net below:
an exception that escapes anyway shows Streamlit's generic notice, not a trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import streamlit as st
from streamlit.errors import FragmentHandledException

from engine.core import paths
from engine.core.errors import StudioError
from ui import access
from ui.safe import md, redact_paths

LOGGER_NAME = "retrain_studio.dashboard"
LOG_FILE = Path("logs") / "dashboard.log"
LOG_MAX_BYTES = 5 * 1024**2
# Longest file name quoted in full (a name over 255 bytes is itself the error).
NAME_SHOWN = 60
_APP_ROOT = Path(__file__).resolve().parents[1]
_logger = logging.getLogger(LOGGER_NAME)
_logger_lock = threading.Lock()
_log_file_lock = threading.Lock()


def logger() -> logging.Logger:
    """The dashboard's logger (to stderr: the terminal running `streamlit run`), set up once."""
    with _logger_lock:  # sessions run in threads of their own: one handler, not one each
        if not _logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            _logger.addHandler(handler)
            _logger.setLevel(logging.INFO)
            _logger.propagate = False
    return _logger


def log_file() -> Path:
    """The dashboard's error log: `logs/dashboard.log` in the studio's home folder."""
    return paths.home_dir() / LOG_FILE


def studio_folders() -> dict[Path, tuple[str, str | None]]:
    """The server folders a message may quote, and how a visitor is told them instead."""
    named = {
        paths.home_dir(): ("the studio's home folder", None),
        paths.cache_dir(): ("the studio's cache", None),
        paths.datasets_dir(): ("the datasets folder", "dataset"),
        paths.runs_dir(): ("the runs folder", "run"),
        _APP_ROOT: ("the app's folder", None),
        Path(sys.prefix): ("the app's Python", None),
    }
    # the same folders through symbolic links, as a resolved path would quote them
    return {**{p.resolve(): v for p, v in named.items()}, **named}


def public_text(value: object) -> str:
    """`value` as Markdown fit for a browser: server paths told by name when exposed, escaped.

    Args:
        value: a message, an exception, a name.

    Returns:
        Escaped Markdown (`ui.safe.md`).
    """
    text = str(value)
    if access.exposed():
        text = redact_paths(text, studio_folders(), visible=tuple(paths.data_roots() or ()))
    return md(text)


def shown_path(path: str | os.PathLike[str]) -> str:
    """A folder as the browser may see it: itself on localhost, its name when exposed (not escaped)."""
    if not access.exposed():
        return str(path)
    return redact_paths(str(Path(path)), studio_folders(), visible=tuple(paths.data_roots() or ()))


def describe_os_error(error: OSError) -> str:
    """An OSError as a short sentence naming the file by its last part, not its server path.

    Args:
        error: the error (`strerror` and `filename` are used when set).

    Returns:
        E.g. "File exists: 'daisy'", or "File name too long: 'aaaa…'" (a long
        name cut at NAME_SHOWN characters).
    """
    reason = error.strerror or type(error).__name__
    names = [Path(os.fsdecode(f)).name for f in (error.filename, error.filename2) if f]
    shown = [n if len(n) <= NAME_SHOWN else n[: NAME_SHOWN - 1] + "…" for n in names]
    return f"{reason}: " + " → ".join(repr(n) for n in shown) if names else reason


def show_error(error: object, *, prefix: str = "", icon: str = ":material/error:") -> None:
    """Show a user error as an `st.error`: escaped, with server paths named when exposed.

    Args:
        error: a `StudioError`, an `OSError` (told by `describe_os_error`) or a message.
        prefix: text before it, already Markdown ("Cannot import the zip: "). Defaults to "".
        icon: the alert's icon. Defaults to an error icon.
    """
    text = describe_os_error(error) if isinstance(error, OSError) else str(error)
    st.error(prefix + public_text(text), icon=icon)


@contextlib.contextmanager
def user_errors(prefix: str = "", *, os_hint: str = "") -> Iterator[None]:
    """Show a `StudioError` or `OSError` raised inside as a message, then stop the script.

    For calls that act on user input (an upload, a typed folder): the page
    shows what is wrong instead of a traceback, and draws nothing after it.

    Args:
        prefix: Markdown before the message ("Cannot import the zip: "). Defaults to "".
        os_hint: plain text after an OSError's description: what it means
            here and what to do. Defaults to "".
    """
    try:
        yield
    except (StudioError, OSError) as error:
        if isinstance(error, OSError):
            logger().info("user input caused %r", error)
            error = f"{describe_os_error(error)}{os_hint}"
        show_error(error, prefix=prefix)
        st.stop()


def report_unexpected(error: BaseException) -> str:
    """Log `error` with its traceback under a new reference and show a short message naming it.

    Args:
        error: the exception.

    Returns:
        The reference (8 hex digits), also in the log line.
    """
    reference = uuid.uuid4().hex[:8]
    trace = "".join(traceback.format_exception(error))
    logger().error("unexpected error, reference %s\n%s", reference, trace)
    _append_log(f"{time.strftime('%Y-%m-%d %H:%M:%S')} reference {reference}\n{trace}\n")
    where = (
        f"`{LOG_FILE.as_posix()}` in the studio's home folder on the server"
        if access.exposed()
        else f"{md(log_file())} and the output of `streamlit run`"
    )
    st.error(
        f"Something went wrong on the server (reference **{reference}**). "
        f"The details are in the server's log: {where}.",
        icon=":material/report:",
    )
    return reference


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Around a page run or a fragment: user errors as messages, anything else as a reference.

    Streamlit's own control flow (`st.stop`, `st.rerun`) passes through, and
    so does an exception a fragment has already shown.
    """
    try:
        yield
    except FragmentHandledException:
        raise
    except StudioError as error:
        show_error(error)
    except Exception as error:  # noqa: BLE001 - the last resort: logged with its traceback, shown by reference
        report_unexpected(error)


def _append_log(text: str) -> None:
    """Append to the log file, keeping one older file once it passes LOG_MAX_BYTES."""
    path = log_file()
    try:
        with _log_file_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and path.stat().st_size > LOG_MAX_BYTES:
                os.replace(path, path.with_suffix(".log.1"))
            with path.open("a", encoding="utf-8") as log:
                log.write(text)
    except OSError as error:  # the stderr line above still has it
        logger().warning("could not write %s: %s", path, error)
