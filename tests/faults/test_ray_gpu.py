"""GPU extraction on Ray: TensorFlow on the node's GPU, with parity against LiteRT in-process.

Runs only where TensorFlow sees a GPU (skipped here: this machine has none).
The embedded Ray (`--ray local`) reports the GPU, so the actors load the
backbone with TensorFlow on it and a batch from `gpu_batch_size`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.scan import scan_dataset
from engine.models.loading import PARITY_TOLERANCE, load_feature_runtime
from engine.train.bottlenecks import extract_bottlenecks
from tests.support.factories import write_class_folders

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gpu() -> None:
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("no GPU: TensorFlow sees none on this machine")


def test_gpu_features_match_litert_in_process(gpu: None, tmp_path: Path) -> None:
    from engine.core import cluster

    records = list(scan_dataset(write_class_folders(tmp_path / "d", {"a": 40, "b": 40}),
                                use_cache=False).images)  # fmt: skip
    runtime = load_feature_runtime("efficientnet_lite0")
    assert runtime.runtime == "litert"
    here = extract_bottlenecks(records, runtime)
    try:
        on_gpu = extract_bottlenecks(records, runtime, ray_address="local")
        assert cluster.describe("local").gpus >= 1
    finally:
        cluster.disconnect()
    assert on_gpu.computed == len(records)
    assert float(np.abs(on_gpu.features - here.features).max()) < PARITY_TOLERANCE
