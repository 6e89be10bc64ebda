"""Opening an image file safely: regular files only, a size limit, the type from the first bytes.

- A named pipe, socket or device is refused from its `stat` *before* any
  `open`: opening a FIFO blocks until a writer appears, a device may never end.
- A file over `engine.core.limits.MAX_IMAGE_BYTES` is refused before any
  byte is read.
- The first bytes say whether a file is a JPEG, PNG, GIF, BMP, WebP or TIFF
  at all, before a decoder sees it.
"""

from __future__ import annotations

import os
import stat
from typing import IO

from engine.core.errors import ImageError
from engine.core.limits import MAX_IMAGE_BYTES

# How many leading bytes `sniff_image_format` needs.
SNIFF_BYTES = 16
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)
NOT_AN_IMAGE = "not an image (its first bytes are not those of a JPEG, PNG, GIF, BMP, WebP or TIFF file)"
_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def special_file_reason(mode: int) -> str | None:
    """Why a file of this `st_mode` is not read, or None for a regular file.

    Args:
        mode: `os.stat_result.st_mode` (from `stat` or `lstat`).

    Returns:
        None for a regular file; else a reason such as "a named pipe (FIFO),
        not a regular file; skipped without opening it".
    """
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    what = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
    return f"{what}, not a regular file; skipped without opening it"


def _check_file_stat(info: os.stat_result, where: str, max_bytes: int) -> None:
    reason = special_file_reason(info.st_mode)
    if reason is not None:
        raise ImageError(reason, where)
    if info.st_size == 0:
        raise ImageError("empty file", where)
    if info.st_size > max_bytes:
        raise ImageError(
            f"too large: {info.st_size:,} bytes (the limit is {max_bytes:,}; set "
            f"{MAX_IMAGE_BYTES.env} to raise it)",
            where,
        )


def open_image_file(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> IO[bytes]:
    """Open an image file for reading, refusing what must not be read.

    The file is checked with `stat` *before* it is opened (a FIFO's `open`
    blocks until a writer appears; a device may never end), opened without
    blocking, and checked again with `fstat` on the open descriptor, so a file
    swapped for a pipe in between is caught too.

    Args:
        path: the file (a symbolic link is followed).
        max_bytes: the largest size accepted. Defaults to
            `engine.core.limits.MAX_IMAGE_BYTES`.

    Returns:
        The open binary file; the caller closes it.

    Raises:
        ImageError: missing, unreadable, a folder, a pipe, socket or device,
            empty, or larger than `max_bytes`.
    """
    where = str(path)
    limit = MAX_IMAGE_BYTES.value() if max_bytes is None else max_bytes
    try:
        _check_file_stat(os.stat(path), where, limit)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError("file not found", where) from None
    except PermissionError:
        raise ImageError("permission denied", where) from None
    except OSError as exc:
        raise ImageError(f"cannot read ({exc.strerror or exc})", where) from None
    try:
        _check_file_stat(os.fstat(fd), where, limit)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def sniff_image_format(head: bytes) -> str | None:
    """The image format a file's first bytes announce, or None.

    Args:
        head: the file's first `SNIFF_BYTES` bytes (fewer for a shorter file).

    Returns:
        "JPEG", "PNG", "GIF", "TIFF", "BMP" or "WEBP"; None when the bytes
        match none of the supported formats.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _SIGNATURES if head.startswith(magic)), None)
