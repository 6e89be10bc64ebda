"""engine.data.geometry: the central crop and resize every backbone input goes through, thumbnails."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from engine.data.geometry import (
    DRAFT_MARGIN,
    draft_min_side,
    load_prepared,
    make_thumbnail,
    prepare_image,
    thumbnail_png,
)
from tests.support.factories import encode


def _photo(size: tuple[int, int] = (80, 60)) -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def test_prepare_image_crops_the_central_square_then_resizes() -> None:
    # 200x100: a red central 50x50 square inside blue.
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (75, 25, 125, 75))
    full = prepare_image(image, 32)
    centre = prepare_image(image, 32, crop_fraction=0.5)
    assert full.shape == (32, 32, 3) and full.dtype == np.uint8
    assert (centre[..., 0] > 200).all()
    assert (full[0, 0] == (0, 0, 255)).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0},
        {"size": 32, "crop_fraction": 0.0},
        {"size": 32, "crop_fraction": 1.5},
        {"size": 32, "resample": "magic"},
    ],
)
def test_prepare_image_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        prepare_image(Image.new("RGB", (10, 10)), **kwargs)


def test_thumbnail_keeps_aspect_ratio_within_max_side() -> None:
    data = encode(_photo((400, 200)), "JPEG")
    assert make_thumbnail(data, max_side=100).size == (100, 50)
    assert Image.open(io.BytesIO(thumbnail_png(data, max_side=64))).size == (64, 32)


def test_load_prepared_decodes_then_prepares_like_prepare_image() -> None:
    data = encode(_photo((200, 100)), "PNG")
    prepared = load_prepared(data, 32, crop_fraction=0.875, resample="bicubic")
    expected = prepare_image(Image.open(io.BytesIO(data)), 32, crop_fraction=0.875, resample="bicubic")
    assert prepared.shape == (32, 32, 3) and prepared.dtype == np.uint8
    assert np.array_equal(prepared, expected)


def test_draft_min_side_keeps_the_margin_over_the_cropped_input() -> None:
    assert draft_min_side(128, 0.875) == math.ceil(DRAFT_MARGIN * 128 / 0.875)
    assert draft_min_side(224) == math.ceil(DRAFT_MARGIN * 224)
    assert DRAFT_MARGIN >= 2  # a 1x margin measurably changed the features (see test_fast_path)


@pytest.mark.parametrize(("size", "crop"), [(0, 1.0), (128, 0.0), (128, 1.5)])
def test_draft_min_side_rejects_bad_arguments(size: int, crop: float) -> None:
    with pytest.raises(ValueError):
        draft_min_side(size, crop)
