"""Bottleneck extraction on a Ray cluster (`--ray`): the same features, computed on many nodes.

The driver (`engine.train.bottlenecks.extract_bottlenecks`) looks up the
cache and lists the images still missing; here Ray tasks decode and prepare
them and an actor pool (one actor per node) holds the feature runtime. The
actors run the very model the driver loaded (the LiteRT `.tflite` bytes, or
the Keras model saved to bytes), so the features equal the in-process ones.
On a cluster with GPUs the actors load the backbone with TensorFlow on their
GPU instead, with a batch size that fits (`gpu_batch_size`).

The features come back to the driver batch by batch, which writes them to
the same cache under the same keys, advances the progress bar and polls the
cancel flag between batches. Cancelling, or a failure, disconnects the
driver, which cancels the rest of its work on the cluster.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from engine.core import cluster, raydata
from engine.core.errors import StudioError
from engine.data.geometry import load_prepared
from engine.models.runtime import FeatureRuntime

# Images per batch on a GPU, by its memory: activations of a 224-px batch are ~5 MB per image.
_GPU_BATCH_BY_GB = ((40, 256), (16, 128), (8, 64), (0, 32))


def gpu_batch_size(memory_gb: float, input_size: int = 224) -> int:
    """Images per GPU batch that fit a GPU with `memory_gb` of memory.

    Args:
        memory_gb: the GPU's memory.
        input_size: the input side (larger inputs take smaller batches). Defaults to 224.

    Returns:
        The batch size (at least 8).
    """
    base = next(size for floor, size in _GPU_BATCH_BY_GB if memory_gb >= floor)
    scale = (224 / max(input_size, 1)) ** 2
    return max(8, int(base * min(scale, 2.0)))


def _model_spec(runtime: FeatureRuntime, gpus: float) -> dict[str, Any]:
    """What an actor needs to build the driver's runtime again."""
    backbone = runtime.backbone
    common = {"backbone": backbone.name, "input_size": runtime.input_size}
    if runtime.runtime == "litert" and gpus > 0:
        # LiteRT runtimes hold the backbone's own (ImageNet) weights: a GPU node builds them itself.
        return {**common, "kind": "tensorflow-gpu"}
    if runtime.runtime == "litert":
        return {**common, "kind": "litert", "model": runtime.model_bytes()}  # type: ignore[attr-defined]
    model = getattr(runtime, "model", None)
    if model is None:
        raise StudioError(
            f"the {runtime.runtime} feature runtime cannot be sent to a Ray cluster; "
            "use --runtime litert or run without --ray"
        )
    with tempfile.TemporaryDirectory(prefix="ray-model-") as folder:
        path = os.path.join(folder, "extractor.keras")
        model.save(path)
        with open(path, "rb") as handle:
            return {**common, "kind": "tensorflow", "model": handle.read()}


class FeatureActor(raydata.ModelActor):
    """Holds one feature runtime per node; turns prepared images into features."""

    def setup(self, *, kind: str, backbone: str, input_size: int, model: bytes | None = None) -> None:
        from engine.models.registry import get_backbone
        from engine.models.runtime import (
            LiteRTFeatureRuntime,
            TensorFlowFeatureRuntime,
            feature_layout,
        )

        spec = get_backbone(backbone)
        if kind == "litert":
            self.runtime: FeatureRuntime = LiteRTFeatureRuntime(
                spec, input_size, model_content=model, **feature_layout()
            )
        elif kind == "tensorflow":
            import keras

            with tempfile.TemporaryDirectory(prefix="ray-model-") as folder:
                path = os.path.join(folder, "extractor.keras")
                with open(path, "wb") as handle:
                    handle.write(model or b"")
                loaded = keras.models.load_model(path, compile=False)
            self.runtime = TensorFlowFeatureRuntime(spec, input_size, loaded)
        else:  # tensorflow-gpu: the node's own TensorFlow build of the backbone, on its GPU
            from engine.models.loading import load_feature_runtime

            self.runtime = load_feature_runtime(backbone, input_size=input_size, prefer="tensorflow")

    def run(self, batch: dict[str, Any]) -> dict[str, Any]:
        images, errors = batch["image"], np.asarray(batch["error"], dtype=object)
        ok = errors == ""
        features = np.zeros((len(errors), self.runtime.feature_size), np.float32)
        if ok.any():
            features[ok] = self.runtime.features(np.ascontiguousarray(images[ok]))
        return {"index": np.asarray(batch["index"]), "features": features, "error": errors}


def ray_batches(
    paths: Sequence[str],
    runtime: FeatureRuntime,
    *,
    address: str,
    batch_size: int,
    nodes: dict[str, int] | None = None,
) -> Iterator[tuple[list[int], np.ndarray | None, list[tuple[int, str]]]]:
    """Features of `paths` computed on the Ray cluster, batch by batch in completion order.

    Args:
        paths: the image files (every node must see them at these paths).
        runtime: the driver's feature runtime (its model is what the actors run).
        address: "local" or the head's HOST:PORT.
        batch_size: images per batch (on GPUs, `gpu_batch_size` instead).
        nodes: filled with images computed per node id. Defaults to None.

    Yields:
        `(positions, features, failures)`: positions into `paths`, their float32
        features (None if every image failed), and `(position, reason)` per failure.

    Raises:
        StudioError: the cluster cannot be reached, or failed during the run.
    """
    info = cluster.connect(address)
    spec = _model_spec(runtime, info.gpus)
    num_gpus = 0.0
    if spec["kind"] != "litert" and info.gpus > 0:  # TensorFlow on the nodes' GPUs
        num_gpus, batch_size = 1.0, gpu_batch_size(_gpu_memory_gb(), runtime.input_size)
    backbone = runtime.backbone
    load = functools.partial(
        load_prepared,
        size=runtime.input_size,
        crop_fraction=backbone.crop_fraction,
        resample=backbone.resample,
    )
    prepare = functools.partial(raydata.prepare_batch, load=load, size=runtime.input_size)
    finished = False
    watch = cluster.HeadWatch(address)
    try:
        with watch:
            yield from _collect(
                raydata.map_files(
                    info, paths, prepare, FeatureActor, spec, batch_size=batch_size, num_gpus=num_gpus
                ),
                nodes,
            )
        finished = True
    except KeyboardInterrupt:
        if watch.lost is None:
            raise
        raise StudioError(
            f"the Ray cluster at {address} went away during the run ({watch.lost}); the features "
            "computed so far are cached, so start the run again when the cluster is back "
            "(or without --ray)"
        ) from None
    except (StudioError, GeneratorExit):
        raise
    except Exception as exc:  # Ray's errors: a node, an actor or the head went away
        raise cluster.cluster_error(exc, address) from exc
    finally:
        if not finished and watch.lost is None:
            cluster.disconnect()  # cancels what this driver still has running on the cluster


def _collect(
    batches: Iterator[dict[str, Any]], nodes: dict[str, int] | None
) -> Iterator[tuple[list[int], np.ndarray | None, list[tuple[int, str]]]]:
    for batch in batches:
        errors = batch["error"]
        positions = [int(i) for i in batch["index"]]
        ok = [k for k, error in enumerate(errors) if error == ""]
        failures = [(positions[k], str(errors[k])) for k in range(len(errors)) if errors[k] != ""]
        if nodes is not None:
            for node in batch["node"]:
                nodes[str(node)] = nodes.get(str(node), 0) + 1
        features = np.asarray(batch["features"], np.float32)[ok] if ok else None
        yield [positions[k] for k in ok], features, failures


def _gpu_memory_gb() -> float:
    """The smallest GPU memory Ray reports on the cluster (GB), or 16 when it does not say."""
    import ray

    sizes = [
        float(node["Resources"].get("accelerator_memory", 0)) / 1e9
        for node in ray.nodes()
        if node.get("Alive") and node["Resources"].get("GPU")
    ]
    sizes = [s for s in sizes if s > 0]
    return min(sizes) if sizes else 16.0
