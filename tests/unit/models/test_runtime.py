"""engine.models.runtime: LiteRT interpreters shared by threads and split across cores."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.data.geometry import draft_min_side
from engine.data.images import load_image
from engine.models.loading import PARITY_IMAGES_DIR, PARITY_TOLERANCE, load_feature_runtime
from engine.models.runtime import FeatureRuntime, LiteRTFeatureRuntime, feature_layout

BACKBONE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def lite() -> FeatureRuntime:
    loaded = load_feature_runtime(BACKBONE)
    assert loaded.runtime == "litert", loaded.notice
    return loaded


@pytest.fixture(scope="module")
def prepared(lite: FeatureRuntime) -> np.ndarray:
    """Four real photos as the runtime takes them: the bundled parity photos and their mirrors."""
    backbone, size = lite.backbone, lite.input_size
    min_side = draft_min_side(size, backbone.crop_fraction)
    photos = [
        backbone.prepare(load_image(path, min_side=min_side), size)
        for path in sorted(PARITY_IMAGES_DIR.glob("*.jpg"))
    ]
    return np.stack([*photos, *(photo[:, ::-1] for photo in photos)])


def test_a_batch_split_across_interpreters_gives_the_same_features(prepared, lite) -> None:
    one = prepared
    batch = np.concatenate([one, one[::-1]])  # 8 images: two chunks of 4
    single = LiteRTFeatureRuntime(lite.backbone, lite.input_size, lite.model_path)
    pair = LiteRTFeatureRuntime(
        lite.backbone, lite.input_size, lite.model_path, instances=2, num_threads=1
    )
    split = pair.features(batch)
    assert pair._created == 2  # the second interpreter took half of the batch
    assert np.max(np.abs(split - single.features(batch))) < PARITY_TOLERANCE


def test_litert_runtime_serves_threads_calling_at_once(prepared, lite) -> None:
    batch = prepared
    pair = LiteRTFeatureRuntime(
        lite.backbone, lite.input_size, lite.model_path, instances=2, num_threads=1
    )
    expected = pair.features(batch)
    results: list[np.ndarray] = []
    barrier = threading.Barrier(4)

    def call() -> None:
        barrier.wait()
        results.append(pair.features(batch))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and pair._created == 2
    for got in results:
        assert np.array_equal(got, expected)


def test_feature_layout_shares_the_cores_between_two_interpreters() -> None:
    layouts = {cores: feature_layout(cores) for cores in (1, 2, 8)}
    assert layouts == {
        1: {"instances": 1, "num_threads": 1},
        2: {"instances": 2, "num_threads": 1},
        8: {"instances": 2, "num_threads": 4},
    }


@pytest.mark.parametrize(
    ("layout", "message"), [({"instances": 0}, "instances=0"), ({"num_threads": 0}, "num_threads=0")]
)
def test_litert_runtime_refuses_an_empty_layout(lite, layout: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LiteRTFeatureRuntime(lite.backbone, lite.input_size, lite.model_path, **layout)
