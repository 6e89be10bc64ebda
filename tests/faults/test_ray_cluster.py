"""A real two-node Ray cluster on 127.0.0.1 (tests/support/ray_cluster.py): the studio's `--ray` path.

One cluster for the module (a head and a second node, 1 logical CPU each,
token authentication on), in a network and PID namespace of its own; it is
stopped with `ray stop --force` at the end, also when a test fails. The
features are checked against the in-process ones, image for image.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.data.scan import scan_dataset
from engine.models.loading import load_feature_runtime
from engine.train.bottlenecks import extract_bottlenecks
from engine.train.cache import BottleneckCache
from tests.support.factories import write_class_folders
from tests.support.ray_cluster import LocalRayCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SIZE = 128


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalRayCluster]:
    with LocalRayCluster(nodes=2, cpus=1) as running:
        yield running


@pytest.fixture(scope="module")
def runtime():
    return load_feature_runtime("efficientnet_lite0", input_size=SIZE)


def _in_process(folder: Path, runtime) -> dict[str, np.ndarray]:
    records = list(scan_dataset(folder, use_cache=False).images)
    result = extract_bottlenecks(records, runtime)
    return {records[i].sha256: result.features[row] for row, i in enumerate(result.kept)}


def _cache_rows(cache: BottleneckCache) -> int:
    try:
        return len(cache)
    except sqlite3.Error:
        return 0


def _driver(ray_cluster: LocalRayCluster, images: Path, cache: Path, *extra: str) -> subprocess.Popen:
    return ray_cluster.popen(
        [sys.executable, "-m", "tests.support.cluster_driver", "--images", str(images),
         "--cache", str(cache), "--ray", ray_cluster.address, *extra],
        cwd=ROOT,
    )  # fmt: skip


def _running_driver(ray_cluster: LocalRayCluster, runtime, tmp_path: Path):
    """600 photos being extracted on the cluster, once the first features are in the cache."""
    images = write_class_folders(tmp_path / "data", {"a": 300, "b": 300})
    cache_dir = tmp_path / "bottlenecks"
    driver = _driver(ray_cluster, images, cache_dir)
    cache = BottleneckCache.for_runtime(runtime, cache_dir)
    wait_for(lambda: _cache_rows(cache) > 0 or driver.poll() is not None, timeout=240,
             what="the first features in the cache")  # fmt: skip
    return images, driver, cache


def _last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def test_the_embedded_ray_gives_the_in_process_features(runtime, tmp_path: Path) -> None:
    # `--ray local` starts Ray inside the driver; a loopback-only namespace keeps it off the network.
    images = write_class_folders(tmp_path / "data", {"a": 20, "b": 20})
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m",
         "tests.support.cluster_driver", "--images", str(images), "--cache", str(tmp_path / "bn"),
         "--ray", "local"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = _last_json(done.stdout)
    assert out["computed"] == 40 and len(out["nodes"]) == 1
    expected = _in_process(images, runtime)
    found, damaged = BottleneckCache.for_runtime(runtime, tmp_path / "bn").get_many(expected)
    assert damaged == 0 and max(float(np.abs(found[s] - v).max()) for s, v in expected.items()) < 1e-6


def test_retrain_on_two_nodes_uses_both_and_caches_the_in_process_features(
    ray_cluster: LocalRayCluster, runtime, tmp_path: Path
) -> None:
    images = write_class_folders(tmp_path / "data", {"red": 30, "green": 30, "blue": 30})
    cache_dir = tmp_path / "bottlenecks"
    done = ray_cluster.run(
        [sys.executable, "-m", "engine", "retrain", "--image_dir", str(images),
         "--architecture", "efficientnet_lite0", "--image_size", str(SIZE),
         "--how_many_training_steps", "20", "--bottleneck_dir", str(cache_dir), "--seed", "3",
         "--runs_dir", str(tmp_path / "runs"), "--ray", ray_cluster.address],
        cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    status = json.loads((run / "status.json").read_text())
    nodes = status["bottlenecks"]["ray_nodes"]
    assert len(nodes) == 2 and sum(nodes.values()) == 90, nodes  # both nodes did work
    expected = _in_process(images, runtime)
    cache = BottleneckCache.for_runtime(runtime, cache_dir)
    found, damaged = cache.get_many(expected)
    assert damaged == 0 and set(found) == set(expected)
    worst = max(float(np.abs(found[sha] - vector).max()) for sha, vector in expected.items())
    assert worst < 1e-6

    # label_image on the same cluster: the run's answers for every photo, as in-process, and a
    # file that is not a photo listed with its error in the same batch as good ones.
    (images / "red" / "broken.jpg").write_bytes(b"not a photo")
    done = ray_cluster.run(
        [sys.executable, "-m", "engine", "label_image", "--graph", str(run), "--image", str(images),
         "--output_csv", str(tmp_path / "labels.csv"), "--ray", ray_cluster.address],
        cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1 and "90 labelled, 1 failed" in done.stderr, done.stderr[-3000:]
    import pandas as pd

    from engine.serve.inference import Predictor, image_files

    on_cluster = pd.read_csv(tmp_path / "labels.csv")
    here = Predictor.from_run(run).predict_many([str(f) for f in image_files([images])])
    assert list(on_cluster["source"]) == list(here["source"]) and len(here) == 91
    bad = here["error"].notna()
    assert list(here["source"][bad]) == [str(images / "red" / "broken.jpg")]
    assert on_cluster["error"].notna().tolist() == bad.tolist()
    on_cluster, here = on_cluster[~bad], here[~bad]
    assert list(on_cluster["label"]) == list(here["label"])
    assert np.abs(on_cluster["probability"].to_numpy() - here["probability"].to_numpy()).max() < 1e-5
    # the unknown answer too: the run's feature rule, scored from the actors' features
    assert here["unknown"].notna().all() and here["unknown_score"].notna().all()
    assert list(on_cluster["unknown"]) == list(here["unknown"])
    scores = on_cluster["unknown_score"].to_numpy() - here["unknown_score"].to_numpy()
    assert np.abs(scores).max() < 1e-5


def test_a_driver_without_the_token_is_refused_with_what_to_do(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    env = {k: v for k, v in ray_cluster.env.items() if k != "RAY_AUTH_TOKEN"}
    env.update(HOME=str(tmp_path), RAY_AUTH_TOKEN=f"{'0' * 64}")
    code = f"from engine.core.cluster import connect\nconnect({ray_cluster.address!r}, timeout=15)\n"
    done = ray_cluster.run([sys.executable, "-c", code], cwd=ROOT, env=env, timeout=120)
    assert done.returncode != 0
    assert "RAY_AUTH_TOKEN" in done.stderr and "did not accept this driver" in done.stderr


def test_a_killed_worker_is_retried_and_the_cache_ends_complete(
    ray_cluster: LocalRayCluster, runtime, tmp_path: Path
) -> None:
    images, driver, cache = _running_driver(ray_cluster, runtime, tmp_path)
    killed = ray_cluster.kill("FeatureActor")
    assert killed and driver.poll() is None and _cache_rows(cache) < 600  # killed mid-run
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    assert _last_json(stdout)["computed"] == 600
    expected = _in_process(images, runtime)
    found, damaged = cache.get_many(expected)
    assert damaged == 0 and len(found) == 600 == len(cache)
    assert max(float(np.abs(found[s] - v).max()) for s, v in expected.items()) < 1e-6


def test_cancelling_the_driver_keeps_a_consistent_cache_that_the_next_run_completes(
    ray_cluster: LocalRayCluster, runtime, tmp_path: Path
) -> None:
    images = write_class_folders(tmp_path / "data", {"a": 100, "b": 100})
    cache_dir = tmp_path / "bottlenecks"
    first = _driver(ray_cluster, images, cache_dir, "--stop_after", "32")
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 2, stderr[-3000:]
    assert "cancelled" in _last_json(stdout)["error"]
    cache = BottleneckCache.for_runtime(runtime, cache_dir)
    kept = len(cache)
    assert 32 <= kept < 200
    found, damaged = cache.get_many(_in_process(images, runtime))
    assert damaged == 0 and len(found) == kept
    second = _driver(ray_cluster, images, cache_dir)
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr[-3000:]
    assert _last_json(stdout)["cached"] == kept and _last_json(stdout)["computed"] == 200 - kept
    assert len(cache) == 200


def test_the_train_page_shows_the_live_cluster_and_asks_for_it(ray_cluster: LocalRayCluster) -> None:
    # The AppTest runs inside the cluster's namespace, where 127.0.0.1 is the cluster's.
    env = {**ray_cluster.env, "RS_TEST_RAY_ADDRESS": ray_cluster.address}
    done = ray_cluster.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/app/test_app_train_cluster.py::test_a_live_cluster_shows_its_nodes_and_the_run_asks_for_it"],
        cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]


def test_a_cluster_that_goes_away_is_a_clear_error_and_the_cache_stays_whole(
    ray_cluster: LocalRayCluster, runtime, tmp_path: Path
) -> None:
    # Last in the module: it stops the cluster (the fixture's `ray stop --force` then finds nothing).
    images, driver, cache = _running_driver(ray_cluster, runtime, tmp_path)
    assert driver.poll() is None
    # The head's control store goes: the cluster is gone for the driver. (Killing the raylet under
    # the driver instead makes Ray end the driver process at once, exit 1: nothing to catch.)
    assert ray_cluster.kill("gcs_server")
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 2, stderr[-3000:]
    error = _last_json(stdout)["error"]
    assert "went away" in error and ray_cluster.address in error and "start the run again" in error
    kept = len(cache)
    found, damaged = cache.get_many(_in_process(images, runtime))
    assert damaged == 0 and len(found) == kept > 0
