"""Errors a user can act on.

Every failure that comes from the user's input (a missing folder, an unknown
architecture, a file that is not an image) is raised as a `StudioError` whose
message says what is wrong and what to do. The CLI prints it on one line and
exits with code 2; the pages show it with `st.error`.
"""

from __future__ import annotations


class StudioError(Exception):
    """An error caused by input the user can fix; the message says how."""

    exit_code: int = 2


class ImageError(StudioError):
    """A file could not be used as an image.

    Args:
        reason: a short, human reason ("truncated file", "not an image").
        path: the file concerned, if any. Defaults to None.
    """

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)
