"""Tiny image data for tests, made in a test's own folder.

`write_class_folders` writes a folder-per-class tree whose classes differ in
hue and pattern, so a real classifier learns them from a handful of images.
The archive helpers build the zips and tarballs the import and download
tests feed the engine.
"""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# Real photos (tests/fixtures/README.md): Lite0 labels flower.jpg daisy and china.jpg palace.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Hue-distinct base colours, one per class index (wraps around).
_COLOURS = [
    (200, 40, 40),
    (40, 160, 60),
    (40, 70, 200),
    (220, 200, 40),
    (150, 60, 180),
    (30, 180, 190),
]


def make_image(class_index: int, variant: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """An RGB image for class `class_index`; `variant` changes noise and position."""
    rng = np.random.default_rng(1000 * class_index + variant)
    width, height = size
    base = np.array(_COLOURS[class_index % len(_COLOURS)], dtype=np.float32)
    pixels = np.empty((height, width, 3), dtype=np.float32)
    pixels[:] = base * rng.uniform(0.7, 1.1)
    # a class-specific pattern: stripes whose period depends on the class
    period = 4 + 3 * (class_index % 4)
    offset = int(rng.integers(0, period))
    stripes = ((np.arange(width) + offset) // period) % 2 == 0
    pixels[:, stripes] *= 0.55
    pixels += rng.normal(0, 12, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def image_bytes(image: Image.Image, fmt: str = "JPEG") -> bytes:
    """Encode `image` in `fmt` (a PIL format name)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write_class_folders(
    root: Path,
    counts: dict[str, int],
    *,
    size: tuple[int, int] = (64, 48),
    fmt: str = "JPEG",
) -> Path:
    """Write `counts[name]` images into `root/name/` for each class; return `root`."""
    suffix = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp"}[fmt]
    for class_index, (name, count) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for variant in range(count):
            data = image_bytes(make_image(class_index, variant, size), fmt)
            (folder / f"{name}_{variant:03d}{suffix}").write_bytes(data)
    return root


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    """Encode `image` in `fmt` with PIL's save options `kwargs`."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_with_claimed_size(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR header claims `width` x `height` (a decompression bomb's header)."""
    data = bytearray(encode(Image.new("L", (8, 8)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def zip_bytes(entries: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    """A zip of `entries` (name -> data), plus symbolic links `links` (name -> target)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def photo_entries(prefix: str = "", per_class: int = 3) -> dict[str, bytes]:
    """`{prefix}daisy/...jpg` and `{prefix}roses/...jpg` photos, for an archive."""
    return {
        f"{prefix}{label}/{label}_{i}.jpg": image_bytes(make_image(c, i))
        for c, label in enumerate(("daisy", "roses"))
        for i in range(per_class)
    }


def flower_tgz() -> bytes:
    """A small `flower_photos.tgz` laid out like TensorFlow's (LICENSE.txt and two classes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        files = {"flower_photos/LICENSE.txt": b"CC-BY"} | photo_entries("flower_photos/", per_class=4)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
