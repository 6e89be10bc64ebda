"""Errors a user can act on.

Every failure that comes from the user's input (a missing folder, an unknown
architecture, a file that is not an image) is raised as a `StudioError` whose
message says what is wrong and what to do. The CLI prints it on one line and
exits with code 2; the pages show it with `st.error`.
"""

from __future__ import annotations

import errno
import os
import shutil


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


# errno values that mean "no room to write": a full disk, a file size limit, a quota.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def _full(where: str, why: str) -> StudioError:
    return StudioError(
        f"the disk is full or a file size limit was reached{where} ({why}); free some space and "
        "start again (files written before were left as they were)"
    )


def require_room(folder: str | os.PathLike[str], needed: int, *, what: str) -> None:
    """Refuse to start writing `needed` bytes into `folder` when they cannot fit.

    For writers that fail obscurely on a full disk (TensorFlow's TFLite
    converter writes a temporary SavedModel and, when that fails, falls back
    to a path that breaks with a TypeError).

    Args:
        folder: where the bytes will go.
        needed: about how many bytes one file there will take.
        what: what is written, for the message.

    Raises:
        StudioError: the free space, or this process's file size limit, is below `needed`.
    """
    try:
        import resource  # POSIX only

        limit, unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)[0], resource.RLIM_INFINITY
    except ImportError:  # pragma: no cover
        limit = unlimited = -1
    if limit != unlimited and limit < needed:
        raise _full(f" for {what}", f"files may not exceed {limit} bytes, it needs about {needed}")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise _full(f" for {what} in {folder}", f"{free} bytes free, it needs about {needed}")


def disk_full_error(exc: BaseException) -> StudioError | None:
    """A `StudioError` saying the disk is full, when `exc` (or what caused it) says so.

    Writers that fail for want of room raise `OSError` with ENOSPC, EFBIG (a
    file size limit) or EDQUOT, sometimes wrapped by the library that wrote.

    Args:
        exc: the exception a write raised.

    Returns:
        The error to show instead, or None when `exc` is about something else.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_ROOM:
            where = f" while writing {current.filename}" if current.filename else ""
            return _full(where, str(current.strerror))
        current = current.__cause__ or current.__context__
    return None
