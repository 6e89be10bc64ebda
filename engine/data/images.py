"""Decoding one image file safely.

Everything that reads a photo (the scan, the bottleneck pass, the dashboard's
thumbnails, inference) goes through this module, so one file decides what an
image is: its *content* (JPEG, PNG, GIF, BMP, WebP, TIFF), never its extension.

- Only regular files are opened, and none over the size limit
  (`engine.data.imagefiles.open_image_file`).
- The header is read first; a header claiming more than `MAX_PIXELS` pixels is
  refused before any pixel buffer is allocated (a decompression bomb).
- A file is streamed, never read whole: decoding reads through it, hashing
  reads it in chunks, so memory stays flat whatever the file's size.
- EXIF orientation is applied, so a phone photo taken upright stays upright.
- Every mode becomes RGB: grayscale and palette are expanded, CMYK converted,
  and transparency is composited on white (not dropped), since a cut-out on
  white is what a viewer would show.
- Each failure raises `ImageError` with a short reason the scan can list.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.core.errors import ImageError
from engine.data.imagefiles import NOT_AN_IMAGE, SNIFF_BYTES, open_image_file, sniff_image_format

# 64 megapixels: above any phone camera (a 200 MP sensor bins to 50 MP
# photos), below what would take ~200 MB of RGB memory per image.
MAX_PIXELS = 64_000_000
# Below this a photo carries too little to be worth a network's input.
MIN_SIDE = 32
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "MPO")
# EXIF orientations 5..8 rotate by 90 degrees, so width and height swap.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112
_WHITE = (255, 255, 255)
# MPO is how PIL names a phone JPEG carrying extra frames; it decodes like JPEG.
_JPEG_FORMATS = ("JPEG", "MPO")
_EXIF_ERRORS = (ValueError, TypeError, KeyError, IndexError, OSError, SyntaxError, struct.error)
# `check_image` reads a file up to this size whole (one read, then hashed and
# decoded from memory: ~8% faster on 60 KB photos); bigger files stream. The
# scan's threads hold at most this much each.
WHOLE_READ_BYTES = 16 * 1024**2

ImageSource = str | os.PathLike[str] | bytes | bytearray | IO[bytes]


@dataclass(frozen=True)
class ImageInfo:
    """What a header says about an image.

    Args:
        format: PIL's format name ("JPEG", "PNG", ...).
        width: width in pixels as displayed (after EXIF orientation).
        height: height in pixels as displayed.
        mode: PIL's pixel mode in the file ("RGB", "L", "P", "CMYK", ...).
    """

    format: str
    width: int
    height: int
    mode: str


@dataclass(frozen=True)
class CheckedImage:
    """The result of fully checking one file (`check_image`).

    Args:
        info: the header facts.
        sha256: hex SHA-256 of the file's bytes.
        size_bytes: file size.
    """

    info: ImageInfo
    sha256: str
    size_bytes: int


def _describe(source: Any) -> str | None:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return getattr(source, "name", None) if not isinstance(source, bytes | bytearray) else None


def _as_stream(source: ImageSource) -> IO[bytes]:
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageError("empty file")
        return io.BytesIO(source)
    if isinstance(source, str | os.PathLike):
        return open_image_file(source)
    if hasattr(source, "read"):
        # Read from the current position into our own buffer: closing the PIL
        # image must not close the caller's file (an upload is read again later).
        data = source.read()
        if not data:
            raise ImageError("empty file", _describe(source))
        return io.BytesIO(data)
    raise TypeError(
        f"source={type(source).__name__} is not supported; pass a path, bytes or a binary file object"
    )


def _open(source: ImageSource) -> tuple[Image.Image, IO[bytes]]:
    """Open the header only; refuse bombs and unsupported formats before decoding."""
    stream = _as_stream(source)
    return _identify(stream, _describe(source), owned=isinstance(source, str | os.PathLike)), stream


def _identify(stream: IO[bytes], where: str | None, *, owned: bool) -> Image.Image:
    """PIL's header read of `stream`, refused as `_open` says; `stream` is closed on error if `owned`."""

    def fail(image: Image.Image | None = None) -> None:
        if image is not None:
            image.close()
        if owned:
            stream.close()

    try:
        image = Image.open(stream)
    except Image.DecompressionBombError as exc:
        fail()
        raise ImageError(f"decompression bomb refused: {exc}", where) from None
    except UnidentifiedImageError:
        empty = _is_empty_stream(stream)
        fail()
        raise ImageError("empty file" if empty else "not an image", where) from None
    except (OSError, ValueError, SyntaxError) as exc:
        fail()
        raise ImageError(f"corrupt or truncated header ({exc})", where) from None
    if image.format not in SUPPORTED_FORMATS:
        fail(image)
        raise ImageError(
            f"unsupported format {image.format}; use one of JPEG, PNG, GIF, BMP, WebP, TIFF", where
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        fail(image)
        raise ImageError(f"header claims an empty size {width}x{height}", where)
    if width * height > MAX_PIXELS:
        fail(image)
        raise ImageError(
            f"decompression bomb refused: header claims {width}x{height} pixels "
            f"(limit {MAX_PIXELS:,} pixels)",
            where,
        )
    return image


@contextlib.contextmanager
def _header(source: ImageSource) -> Iterator[Image.Image]:
    """`_open` for a header-only read: the image and our own stream are closed after."""
    image, stream = _open(source)
    try:
        yield image
    finally:
        image.close()
        _close_if_ours(stream, source)


def _is_empty_stream(stream: IO[bytes]) -> bool:
    try:
        stream.seek(0, io.SEEK_END)
        return stream.tell() == 0
    except (OSError, ValueError):
        return False


def _close_if_ours(stream: IO[bytes], source: ImageSource) -> None:
    if isinstance(source, str | os.PathLike):
        stream.close()


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
    except _EXIF_ERRORS:  # a broken EXIF block must not make the photo unusable
        return 1


def _info(image: Image.Image) -> ImageInfo:
    width, height = image.size
    if _orientation(image) in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return ImageInfo(str(image.format), width, height, image.mode)


def probe_image(source: ImageSource) -> ImageInfo:
    """Read an image's header: format, displayed size and mode, without decoding pixels.

    Args:
        source: a path, bytes, or a binary file object.

    Returns:
        The `ImageInfo`.

    Raises:
        ImageError: empty file, not an image, unsupported format, or a header
            claiming more than `MAX_PIXELS` pixels.
    """
    with _header(source) as image:
        return _info(image)


def exif_orientation(source: ImageSource) -> int:
    """The EXIF orientation tag of an image (1 = stored upright), read from the header.

    Args:
        source: a path, bytes, or a binary file object.

    Returns:
        1 to 8; 1 when the file has no (or a broken) orientation tag.

    Raises:
        ImageError: the file cannot be opened as an image (see `probe_image`).
    """
    with _header(source) as image:
        return _orientation(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparency is composited on white.

    Args:
        image: a PIL image in any mode.

    Returns:
        An RGB image (`image` itself when it is RGB already).
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float grayscale: stretch to 8 bits rather than clip to white.
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.astype(np.uint8), "L")
    if image.mode == "P" or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def _decode(image: Image.Image, where: str | None) -> Image.Image:
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)  # the first frame of an animation stands for the file
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(f"decompression bomb refused: {exc}", where) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        text = str(exc)
        reason = "truncated file" if "truncated" in text or isinstance(exc, EOFError) else "corrupt data"
        raise ImageError(f"{reason} ({text})" if text else reason, where) from None
    return image


def _draft_size(size: tuple[int, int], min_side: int) -> tuple[int, int]:
    width, height = size
    scale = min_side / min(width, height)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def load_image(source: ImageSource, *, min_side: int | None = None) -> Image.Image:
    """Decode an image fully into RGB, with EXIF orientation applied.

    Transparency (RGBA, LA, palette with a transparent colour) is composited on
    white; grayscale, palette, CMYK and 16-bit images are converted to RGB.

    Args:
        source: a path, bytes, or a binary file object.
        min_side: when set, a JPEG may be decoded at a reduced scale (1/2, 1/4,
            1/8) as long as its short side stays >= `min_side`, which is much
            faster for a network input. Defaults to None (full resolution).

    Returns:
        A fully loaded RGB `PIL.Image.Image`, independent of the source.

    Raises:
        ImageError: any reason the file cannot be used (see `probe_image`), or
            "truncated file" / "corrupt data" while decoding.
        ValueError: `min_side` is not a positive integer.
    """
    if min_side is not None and (not isinstance(min_side, int) or min_side <= 0):
        raise ValueError(f"min_side={min_side!r} must be a positive integer or None")
    where = _describe(source)
    image, stream = _open(source)
    try:
        if min_side is not None and image.format in _JPEG_FORMATS:
            image.draft("RGB", _draft_size(image.size, min_side))
        image = _decode(image, where)
        try:
            oriented = ImageOps.exif_transpose(image)
        except _EXIF_ERRORS:  # a broken EXIF block: keep the pixels as stored
            oriented = image
        rgb = to_rgb(oriented)
        if rgb is image:
            rgb = image.copy()  # detach from the file handle
        return rgb
    finally:
        image.close()
        _close_if_ours(stream, source)


def check_image(
    path: str | os.PathLike[str], *, min_side: int = MIN_SIDE, max_bytes: int | None = None
) -> CheckedImage:
    """Fully check one file for the dataset scan: sniff it, decode it, hash it, streaming.

    Only a regular file of at most `max_bytes` is opened (see
    `open_image_file`); its first bytes must announce a supported format
    before the decoder sees it. A JPEG is decoded in draft mode (1/8 scale),
    which still runs through all of its compressed data and so detects
    truncation, at a fraction of the cost of a full decode. A file up to
    `WHOLE_READ_BYTES` (any photo) is read once into memory; a bigger one is
    hashed and decoded streaming, so memory stays flat whatever its size.

    Args:
        path: the file.
        min_side: the shortest usable side in pixels. Defaults to `MIN_SIDE`.
        max_bytes: the largest file accepted. Defaults to
            `engine.core.limits.MAX_IMAGE_BYTES`.

    Returns:
        A `CheckedImage` with the header facts, SHA-256 and size.

    Raises:
        ImageError: not a regular file, empty, too large, not an image,
            unsupported, decompression bomb, truncated, corrupt, or "too
            small" (short side under `min_side`).
    """
    where = str(path)
    with open_image_file(path, max_bytes=max_bytes) as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            if size <= WHOLE_READ_BYTES:  # a photo: one read, sniffed, hashed, decoded from memory
                data = handle.read()
                if sniff_image_format(data[:SNIFF_BYTES]) is None:
                    raise ImageError(NOT_AN_IMAGE, where)
                digest = hashlib.sha256(data).hexdigest()
                stream: IO[bytes] = io.BytesIO(data)
            else:  # anything bigger streams: memory stays flat whatever the size
                if sniff_image_format(handle.read(SNIFF_BYTES)) is None:
                    raise ImageError(NOT_AN_IMAGE, where)
                handle.seek(0)
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
                handle.seek(0)
                stream = handle
        except OSError as exc:
            raise ImageError(f"cannot read ({exc.strerror or exc})", where) from None
        image = _identify(stream, where, owned=False)  # PIL closes `stream` with the image
        try:
            info = _info(image)
            if min(info.width, info.height) < min_side:
                raise ImageError(
                    f"too small: {info.width}x{info.height} pixels (the short side must be >= "
                    f"{min_side})",
                    where,
                )
            if image.format in _JPEG_FORMATS:
                image.draft("L", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
            _decode(image, where)
        finally:
            image.close()
    return CheckedImage(info, digest, size)
