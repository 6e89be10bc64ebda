"""engine.core.cluster without a cluster: addresses, the reachability check, the batch preparation.

The Ray cluster itself is exercised in tests/faults/test_ray_cluster.py (slow).
"""

from __future__ import annotations

import socket
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from engine.core import cluster, raydata
from engine.core.errors import StudioError
from engine.data.geometry import load_prepared
from engine.train.config import TrainConfig
from engine.train.distributed import gpu_batch_size
from tests.support.factories import write_class_folders


def test_the_flag_wins_over_the_environment_and_neither_means_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(cluster.ADDRESS_ENV, raising=False)
    assert cluster.resolve_address(None) is None
    monkeypatch.setenv(cluster.ADDRESS_ENV, "10.1.2.3:6379")
    assert cluster.resolve_address(None) == "10.1.2.3:6379"
    assert cluster.resolve_address("local") == "local"


@pytest.mark.parametrize("bad", ["nohost", "host:", ":6379", "host:port", "host:70000"])
def test_an_address_that_is_not_host_port_is_refused_with_what_to_give(bad: str) -> None:
    with pytest.raises(StudioError, match=r"--ray=.*HOST:PORT"):
        cluster.check_address(bad)
    with pytest.raises(StudioError, match="--ray="):
        TrainConfig(ray=bad).validate()


def test_resolving_a_run_takes_the_address_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cluster.ADDRESS_ENV, "127.0.0.1:6390")
    resolved = TrainConfig(image_dir="/photos", seed=1).resolved()
    assert resolved.ray == "127.0.0.1:6390"


def test_a_port_where_nothing_listens_is_a_clear_error_without_importing_ray() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    with pytest.raises(StudioError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        cluster._reachable(f"127.0.0.1:{port}", 2.0)


def test_importing_the_engine_does_not_import_ray() -> None:
    import subprocess

    code = "import engine, engine.train.bottlenecks, sys; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_batch_is_prepared_with_its_bad_files_named_and_blank(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "data", {"a": 2})
    good = sorted((root / "a").iterdir())
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    load = partial(load_prepared, size=32, crop_fraction=1.0, resample="bilinear")
    out = raydata.prepare_batch(
        {"index": np.arange(3), "path": np.asarray([str(good[0]), str(bad), str(good[1])])},
        load=load,
        size=32,
    )
    assert out["image"].shape == (3, 32, 32, 3)
    assert list(out["error"][[0, 2]]) == ["", ""] and out["error"][1]
    assert not out["image"][1].any()
    assert np.array_equal(out["image"][0], load(str(good[0])))


def test_cluster_info_counts_only_live_nodes() -> None:
    info = cluster.ClusterInfo(
        "h:1",
        [
            cluster.NodeInfo("a", "127.0.0.1", 2, 1),
            cluster.NodeInfo("b", "127.0.0.1", 4, 0, alive=False),
        ],
    )
    assert (info.cpus, info.gpus, len(info.alive)) == (2, 1, 1)
    assert info.summary() == "Ray cluster at h:1: 1 node(s), 2 CPU(s), 1 GPU(s)"


def test_gpu_batches_shrink_with_memory_and_input_size() -> None:
    assert gpu_batch_size(80) > gpu_batch_size(16) > gpu_batch_size(4) >= 8
    assert gpu_batch_size(16, 380) < gpu_batch_size(16, 224)


def test_the_sweep_takes_the_same_ray_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.train.sweep_config import SweepConfig

    with pytest.raises(StudioError, match="--ray="):
        SweepConfig(ray="nohost").validate()
    monkeypatch.setenv(cluster.ADDRESS_ENV, "local")
    assert SweepConfig(image_dir="/photos", seed=1).resolved().ray == "local"
