"""Counting a zip's entries before `zipfile` parses them.

`zipfile.ZipFile` reads the whole central directory and builds one `ZipInfo`
per entry as soon as it opens an archive, whatever the count: a small upload
can declare millions of entries. `check_entry_count` reads the end of central
directory record (22 bytes at the end of the file, or its zip64 form) and
refuses a declared count over the limit before anything else; it then counts
the central directory's headers cheaply (46 bytes each, names skipped),
stopping at the limit, because `zipfile` walks the directory by its size, not
by the declared count, and a crafted record can lie about the count.

Format facts: PKWARE's APPNOTE.TXT, sections 4.3.12 (central directory
header), 4.3.14-4.3.16 (zip64 end record, locator, end record).
"""

from __future__ import annotations

import struct
from typing import IO

from engine.core.errors import StudioError

_EOCD = struct.Struct("<4s4H2LH")  # signature, disks, entries (this disk, total), size, offset, comment
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_CENTRAL_HEADER_SIZE = 46
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_MAX_COMMENT = 0xFFFF


def _not_a_zip(why: str) -> StudioError:
    return StudioError(f"the upload is not a readable zip file ({why}); upload a .zip archive")


def _read_at(stream: IO[bytes], offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


def _directory(stream: IO[bytes]) -> tuple[int, int, int]:
    """(declared entries, central directory start, central directory size)."""
    end = stream.seek(0, 2)
    tail_size = min(end, _EOCD.size + _MAX_COMMENT)
    tail = _read_at(stream, end - tail_size, tail_size)
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or tail_size - at < _EOCD.size:
        raise _not_a_zip("no end of central directory record")
    record_at = end - tail_size + at
    _, _, _, _, entries, size, _, _ = _EOCD.unpack(tail[at : at + _EOCD.size])
    directory_end = record_at
    locator_at = record_at - _ZIP64_LOCATOR.size
    if locator_at >= 0:
        locator = _read_at(stream, locator_at, _ZIP64_LOCATOR.size)
        if locator[:4] == _ZIP64_LOCATOR_SIGNATURE:
            # As zipfile does: the zip64 end record sits right before its locator.
            zip64_at = locator_at - _ZIP64_EOCD.size
            record = _read_at(stream, zip64_at, _ZIP64_EOCD.size) if zip64_at >= 0 else b""
            if len(record) < _ZIP64_EOCD.size or record[:4] != _ZIP64_EOCD_SIGNATURE:
                raise _not_a_zip("a zip64 locator without its end record")
            fields = _ZIP64_EOCD.unpack(record)
            entries, size, directory_end = fields[7], fields[8], zip64_at
    return entries, directory_end - size, size


def check_entry_count(stream: IO[bytes], limit: int) -> int:
    """Refuse a zip with more than `limit` entries, before `zipfile` parses any.

    Args:
        stream: the zip, a seekable binary stream (left at position 0).
        limit: most entries (files and folders) accepted.

    Returns:
        The number of entries the central directory holds.

    Raises:
        StudioError: the end of central directory record is missing, or the
            archive declares or holds more than `limit` entries.
    """
    try:
        declared, start, size = _directory(stream)
        if declared > limit:
            raise StudioError(
                f"the zip declares {declared:,} entries (files and folders), more than the limit "
                f"of {limit:,}; split it or use a local folder"
            )
        if start < 0:
            raise _not_a_zip("its central directory lies before the start of the file")
        counted = 0
        offset = 0
        stream.seek(start)
        while offset + _CENTRAL_HEADER_SIZE <= size:
            header = stream.read(_CENTRAL_HEADER_SIZE)
            if len(header) < _CENTRAL_HEADER_SIZE or header[:4] != _CENTRAL_SIGNATURE:
                break  # zipfile reports a damaged directory in its own words
            counted += 1
            if counted > limit:
                raise StudioError(
                    f"the zip holds more than {limit:,} entries (files and folders) although it "
                    f"declares {declared:,}; split it or use a local folder"
                )
            name_len, extra_len, comment_len = struct.unpack("<3H", header[28:34])
            skip = name_len + extra_len + comment_len
            stream.seek(skip, 1)
            offset += _CENTRAL_HEADER_SIZE + skip
        return counted
    except OSError as exc:
        raise _not_a_zip(str(exc.strerror or exc)) from None
    finally:
        try:
            stream.seek(0)
        except OSError:
            pass
