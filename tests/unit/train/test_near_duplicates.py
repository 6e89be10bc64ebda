"""Near-duplicates by two signals: the perceptual hash and its cache, SSIM, the candidate searches,
the confirmation, and the kept review (engine.data.phash, engine.data.ssim,
engine.train.review.near_duplicates, engine.train.review.store)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.data import phash
from engine.data.ssim import PhotoComparer, common_size, photo_similarity, ssim
from engine.train.review import near_duplicates as nd
from engine.train.review.findings import normalised
from tests.support.photo_tiles import copy_of, tiles

COPIES = ("half", "double", "jpeg60", "bright")


@pytest.fixture(scope="module")
def photos():
    return tiles("china") + tiles("flower")


# ---------------------------------------------------------------- the hash


@pytest.mark.parametrize("how", COPIES)
def test_a_transformed_copy_keeps_its_hash_and_a_distinct_photo_does_not(photos, how: str) -> None:
    hashes = [phash.dct_hash(p) for p in photos]
    nearest_distinct = min(
        phash.hamming(hashes[a], hashes[b]) for a in range(len(photos)) for b in range(a)
    )
    copies = [
        phash.hamming(h, phash.dct_hash(copy_of(p, how))) for p, h in zip(photos, hashes, strict=True)
    ]
    assert len(hashes[0]) == phash.HASH_BITS // 8 == 32
    assert np.median(copies) <= 12 < nd.HASH_CANDIDATE_BITS < nearest_distinct


def test_the_bit_matrix_turns_dot_products_into_hamming_distances(photos) -> None:
    hashes = [phash.dct_hash(p) for p in photos[:6]] + [None]
    signs = phash.bit_matrix(hashes)
    dots = signs @ signs.T
    for a in range(6):
        for b in range(6):
            assert (phash.HASH_BITS - dots[a, b]) / 2 == phash.hamming(hashes[a], hashes[b])
    assert not signs[6].any()  # a photo without a hash matches nothing


def test_hashes_are_computed_once_per_file_and_kept_beside_the_scan(
    tmp_path: Path, studio_home: Path, photos
) -> None:
    from engine.data.scan import scan_dataset
    from tests.support.photo_tiles import write_tile_dataset

    root = write_tile_dataset(tmp_path / "tiles", 4)
    records = scan_dataset(root).images
    first = phash.photo_hashes(root, records)
    cache = phash.cache_file(root.resolve())
    from engine.data.scan_cache import cache_file as scan_cache_file

    assert cache.is_file() and cache.parent == scan_cache_file(root.resolve()).parent
    seen: list = []
    again = phash.photo_hashes(root, records, progress=seen.append)
    assert again == first and seen[-1].detail["cached"] == len(records)
    assert (first[0].width, first[0].height) == (64, 64)


def test_a_damaged_hash_cache_is_moved_aside_and_rebuilt(tmp_path: Path, studio_home: Path) -> None:
    from engine.data.scan import scan_dataset
    from tests.support.photo_tiles import write_tile_dataset

    root = write_tile_dataset(tmp_path / "tiles", 3)
    records = scan_dataset(root).images
    want = phash.photo_hashes(root, records)
    cache = phash.cache_file(root.resolve())
    for damage in (b"{not json", json.dumps({"version": 1, "hashes": {"x": ["zz", 1, 1]}}).encode()):
        cache.write_bytes(damage)
        assert phash.photo_hashes(root, records) == want
        assert json.loads(cache.read_bytes())["version"] == phash.PHASH_CACHE_VERSION
    assert list(cache.parent.glob("*.damaged-*"))


# ---------------------------------------------------------------- SSIM


def test_ssim_is_one_for_the_same_pixels_and_low_for_unrelated_photos(photos) -> None:
    grey = np.asarray(photos[0].convert("L"), np.float64)
    assert ssim(grey, grey) == pytest.approx(1.0)
    assert photo_similarity(photos[0], photos[0]) == pytest.approx(1.0)
    unrelated = [photo_similarity(photos[0], other) for other in photos[1:]]
    assert max(unrelated) < nd.CONFIRM_SSIM
    with pytest.raises(ValueError, match="differ"):
        ssim(grey, grey[:10])


@pytest.mark.parametrize("how", COPIES)
def test_a_copy_is_confirmed_at_the_smaller_photos_size(photos, how: str) -> None:
    scores = [photo_similarity(p, copy_of(p, how)) for p in photos]
    assert np.median(scores) >= 0.9 and min(scores) >= nd.CONFIRM_SSIM_BOTH


def test_the_common_size_is_the_smaller_photos_capped() -> None:
    assert common_size((64, 48), (128, 96)) == (64, 48)
    assert common_size((1000, 500), (2000, 1000)) == (96, 48)


def test_a_photo_that_cannot_be_read_is_never_confirmed(tmp_path: Path, photos) -> None:
    good = tmp_path / "a.png"
    photos[0].save(good)
    broken = tmp_path / "b.png"
    broken.write_bytes(b"not an image")
    compare = PhotoComparer([good, broken, tmp_path / "gone.png"])
    assert compare(0, 0) == pytest.approx(1.0)
    assert compare(0, 1) == 0.0 and compare(0, 2) == 0.0


# ---------------------------------------------------------------- the candidate searches


def test_the_blockwise_neighbour_search_matches_the_full_matrix() -> None:
    rng = np.random.default_rng(0)
    unit = normalised(rng.normal(size=(257, 8)).astype(np.float32))
    top, dots = nd.nearest(unit, 4, cells=1000)  # blocks of 3 rows
    full = unit @ unit.T
    np.fill_diagonal(full, -np.inf)
    assert nd.block_rows(257, 1000) == 3
    assert np.array_equal(top, np.argsort(-full, axis=1, kind="stable")[:, :4])
    assert np.allclose(dots, np.take_along_axis(full, top, axis=1))


def test_the_feature_radius_is_relative_to_the_data() -> None:
    rng = np.random.default_rng(1)
    for spread in (0.05, 1.0):  # a set of look-alikes and one of varied photos
        x = rng.normal(0, 1, (1, 128)) + rng.normal(0, spread, (200, 128))
        x[150] = x[7] + rng.normal(0, spread * 0.05, 128)  # a copy, far closer than any neighbour
        unit = normalised(x.astype(np.float32))
        i, j, distance, _ = nd.feature_candidates(unit)
        assert set(zip(i.tolist(), j.tolist(), strict=True)) == {(7, 150)}
        assert distance[0] < nd.FEATURE_RADIUS
        ordinary = np.sort(unit @ unit.T, axis=1)[:, -2]  # each photo's nearest other photo
        if spread < 0.1:  # look-alikes: an absolute cosine cut would take every photo for a copy
            assert ordinary.min() > 0.99


def test_hash_neighbours_are_mutual_and_name_an_ordinary_look_alike(photos) -> None:
    images = photos[:20] + [copy_of(photos[3], "half")]
    signs = phash.bit_matrix([phash.dct_hash(p) for p in images])
    i, j, bits, reference = nd.hash_neighbour_pairs(signs)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == {(3, 20)}
    assert bits[0] <= 12 and reference[3] not in (-1, 3, 20)


def test_two_signals_confirmed_by_ssim_find_copies_and_nothing_else(tmp_path: Path, photos) -> None:
    paths = []
    for n, photo in enumerate(photos):
        paths.append(tmp_path / f"p{n}.png")
        photo.save(paths[-1])
    planted = {}
    for n, how in zip((2, 11, 30, 50), COPIES, strict=True):
        paths.append(tmp_path / f"copy{n}.jpg")
        copy_of(photos[n], how).save(paths[-1], "JPEG", quality=90)
        planted[len(paths) - 1] = n
    signs = phash.bit_matrix([phash.hash_photo(p).bits for p in paths])
    rng = np.random.default_rng(0)
    unit = normalised(rng.normal(size=(len(paths), 16)).astype(np.float32))  # features that see nothing
    pairs = nd.find_pairs(unit, signs=signs, similarity=PhotoComparer(paths))
    found = set(zip(pairs.i.tolist(), pairs.j.tolist(), strict=True))
    assert found == {(n, c) for c, n in planted.items()}
    assert set(pairs.signal.tolist()) == {"hash"} and (pairs.score >= nd.CONFIRM_SSIM).all()
    assert [g.tolist() for g in nd.groups_of(len(paths), pairs.i, pairs.j)] == sorted(
        [[n, c] for c, n in planted.items()]
    )


# ---------------------------------------------------------------- the kept review


def _tile_dataset(tmp_path: Path) -> Path:
    from tests.support.photo_tiles import write_tile_dataset

    root = write_tile_dataset(tmp_path / "tiles", 10)
    photo = root / "china" / "china_004.png"
    from PIL import Image

    with Image.open(photo) as image:
        copy_of(image.convert("RGB"), "double").save(
            root / "flower" / "looks_like_china.jpg", quality=90
        )
    return root


@pytest.mark.slow
def test_the_review_finds_a_resized_copy_keeps_its_result_and_redoes_it_when_a_photo_changes(
    tmp_path: Path, studio_home: Path
) -> None:
    from engine.data import edits, library
    from engine.train.review import review_dataset
    from engine.train.review.store import store_file

    root = _tile_dataset(tmp_path)
    library.write_manifest(root, "import")
    first = review_dataset(root, bottleneck_dir=str(tmp_path / "bottlenecks"))
    pair = {f.path for f in first.findings if f.kind in ("near_duplicate", "split_leak")}
    assert pair == {"china/china_004.png", "flower/looks_like_china.jpg"}
    assert "hash" in first.findings[0].evidence or any("SSIM" in f.evidence for f in first.findings)
    assert first.seconds and store_file(root).is_file()

    again = review_dataset(root, bottleneck_dir=str(tmp_path / "nowhere"))  # nothing computed
    assert again.seconds == {} and again.findings == first.findings

    edits.keep(root, ["china/china_004.png"])  # a keep hides the photo, no new review
    kept = review_dataset(root, bottleneck_dir=str(tmp_path / "nowhere"))
    assert kept.seconds == {} and "china/china_004.png" not in {f.path for f in kept.findings}

    (root / "flower" / "looks_like_china.jpg").unlink()  # a photo changes: reviewed again
    fresh = review_dataset(root, bottleneck_dir=str(tmp_path / "bottlenecks"))
    assert fresh.seconds and not [
        f for f in fresh.findings if f.kind in ("near_duplicate", "split_leak")
    ]


def test_a_damaged_kept_review_is_ignored(tmp_path: Path, studio_home: Path) -> None:
    from engine.train.review.report import Finding, Review
    from engine.train.review.store import load, save, store_file

    root = tmp_path / "data"
    root.mkdir()
    review = Review([Finding("outlier", "a/1.jpg", 0.5, "a", "b", neighbours=("b/2.jpg",))], 3)
    save(root, review, {"fingerprint": "x"})
    assert load(root, {"fingerprint": "x"}) == review
    assert load(root, {"fingerprint": "y"}) is None
    for damage in (b"{", b"[]", json.dumps({"version": 1, "stamp": {"fingerprint": "x"}}).encode()):
        store_file(root).write_bytes(damage)
        assert load(root, {"fingerprint": "x"}) is None
