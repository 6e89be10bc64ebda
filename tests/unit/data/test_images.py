"""engine.data.images: every kind of file is decoded to RGB, or refused with a reason."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.core.errors import ImageError
from engine.data.images import MAX_PIXELS, MIN_SIDE, check_image, load_image, probe_image
from tests.support.factories import encode, png_with_claimed_size


def _photo(size: tuple[int, int] = (80, 60)) -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")


# Content decides the format: every file is saved under a misleading, upper-case name.
@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("JPEG", "photo.PNG"),
        ("PNG", "photo.JPG"),
        ("GIF", "photo.JPEG"),
        ("BMP", "photo"),
        ("WEBP", "photo.TXT"),
        ("TIFF", "фото_照片.Jpg"),
    ],
)
def test_format_is_recognised_by_content_not_extension(tmp_path: Path, fmt: str, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(encode(_photo(), fmt))
    assert probe_image(path).format == fmt
    image = load_image(path)
    assert (image.mode, image.size) == ("RGB", (80, 60))


@pytest.mark.parametrize(
    ("mode", "colour"),
    [
        ("L", 128),
        ("P", 3),
        ("CMYK", (0, 255, 255, 0)),
        ("LA", (128, 255)),
        ("RGBA", (10, 20, 30, 255)),
        ("I;16", 40000),
    ],
)
def test_every_pixel_mode_becomes_rgb(mode: str, colour: object) -> None:
    fmt = {"CMYK": "JPEG", "I;16": "PNG"}.get(mode, "PNG" if mode != "P" else "GIF")
    image = load_image(encode(Image.new(mode, (40, 40), colour), fmt))
    assert image.mode == "RGB"
    assert image.size == (40, 40)


def test_transparent_pixels_are_composited_on_white() -> None:
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 20, 40))
    pixels = np.asarray(load_image(encode(rgba, "PNG")))
    assert tuple(pixels[20, 30]) == (255, 255, 255)
    assert tuple(pixels[20, 5]) == (0, 0, 255)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 60 wide, 30 high, left half red; orientation 6 means "rotate 90 clockwise to view".
    stored = Image.new("RGB", (60, 30), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    path.write_bytes(encode(stored, "JPEG", exif=exif, quality=95))
    assert (probe_image(path).width, probe_image(path).height) == (30, 60)
    pixels = np.asarray(load_image(path)).astype(int)
    assert pixels.shape == (60, 30, 3)
    assert pixels[5, 15, 0] > 200 and pixels[5, 15, 2] < 60  # the red half is now on top
    assert pixels[55, 15, 2] > 200


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"just some text, not a photo\n", "not an image"),
        (encode(_photo(), "PPM"), "unsupported format"),
        (png_with_claimed_size(60_000, 60_000), "decompression bomb"),
        (png_with_claimed_size(9_000, 9_000), "decompression bomb"),
    ],
)
def test_unusable_bytes_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError) as info:
        probe_image(data)
    assert reason in info.value.reason


def test_bomb_limit_is_checked_from_the_header_alone() -> None:
    # Just over the limit: a pixel buffer would be ~200 MB, the header is a few bytes.
    side = int(MAX_PIXELS**0.5) + 1
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(png_with_claimed_size(side, side))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF"])
def test_truncated_file_is_detected_by_the_scan_check(tmp_path: Path, fmt: str) -> None:
    data = encode(_photo((200, 150)), fmt)
    path = tmp_path / "cut"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        check_image(path)
    assert "truncated" in info.value.reason or "corrupt" in info.value.reason


def test_progressive_jpeg_truncation_is_detected(tmp_path: Path) -> None:
    data = encode(_photo((200, 150)), "JPEG", progressive=True)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match="truncated"):
        check_image(path)


def test_too_small_image_is_refused_by_the_scan_check(tmp_path: Path) -> None:
    path = tmp_path / "icon.png"
    path.write_bytes(encode(_photo((MIN_SIDE - 1, 100)), "PNG"))
    with pytest.raises(ImageError, match="too small"):
        check_image(path)


def test_scan_check_returns_hash_size_and_header(tmp_path: Path) -> None:
    data = encode(_photo((120, 90)), "PNG")
    path = tmp_path / "ok.png"
    path.write_bytes(data)
    checked = check_image(path)
    assert (checked.info.format, checked.info.width, checked.info.height) == ("PNG", 120, 90)
    assert checked.size_bytes == len(data)
    assert checked.sha256 == hashlib.sha256(data).hexdigest()


def test_first_frame_of_an_animation_is_used() -> None:
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    pixels = np.asarray(load_image(buffer.getvalue()))
    assert pixels[20, 20, 0] > 200 and pixels[20, 20, 1] < 50


def test_min_side_decodes_a_jpeg_at_reduced_scale_but_not_below_min_side() -> None:
    data = encode(_photo((800, 600)), "JPEG")
    image = load_image(data, min_side=140)
    assert 140 <= min(image.size) < 600


def test_load_image_reads_a_file_object_and_leaves_it_open() -> None:
    stream = io.BytesIO(encode(_photo(), "PNG"))
    assert load_image(stream).size == (80, 60)
    assert not stream.closed
