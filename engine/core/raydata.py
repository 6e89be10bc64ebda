"""The Ray Data pipeline the distributed paths share: files in, model outputs back to the driver.

`map_files` serves bottleneck extraction (`engine.train.distributed`) and
batch prediction (`engine.serve.distributed`): the driver lists the files,
Ray tasks decode and prepare them (`prepare_batch`), an actor pool (one
`ModelActor` per live node) runs the model, and the results stream back to
the driver batch by batch, in completion order. Imported only with `--ray`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.cluster import ClusterInfo
from engine.core.errors import ImageError

# Logical CPUs an actor and a decode task reserve. Fractions: on a 2-core machine an actor
# pool that reserves every CPU leaves no room for the decode tasks and the pipeline hangs.
ACTOR_CPUS = 0.25
PREPARE_CPUS = 0.5


def prepare_batch(
    batch: dict[str, Any], *, load: Callable[[str], np.ndarray], size: int
) -> dict[str, Any]:
    """Decode and prepare a batch of files (runs as a Ray task).

    Args:
        batch: `{"index": ..., "path": ...}` columns.
        load: one path -> uint8 `(size, size, 3)`; raises `ImageError` for a bad file.
        size: the prepared side.

    Returns:
        `{"index", "image", "error"}`: a file that failed has a blank image and its reason.
    """
    paths = list(batch["path"])
    images = np.zeros((len(paths), size, size, 3), np.uint8)
    errors: list[str] = []
    for row, path in enumerate(paths):
        try:
            images[row] = load(str(path))
            errors.append("")
        except ImageError as exc:
            errors.append(exc.reason or "not a usable image")
    return {
        "index": np.asarray(batch["index"]),
        "image": images,
        "error": np.asarray(errors, dtype=object),
    }


class ModelActor:
    """Base of the actor-pool classes: `setup(**kwargs)` once, then `run(batch)` per batch.

    Subclasses are given to `map_files`; each call returns the batch with the
    node's id added, so the driver can tell which node did the work.
    """

    def __init__(self, **kwargs: Any) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        self.setup(**kwargs)

    def setup(self, **kwargs: Any) -> None:
        """Load the model once, on the node (`map_files`'s `actor_kwargs`)."""
        raise NotImplementedError

    def run(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One prepared batch (`prepare_batch`'s columns) -> the model's outputs, with "index"."""
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = self.run(batch)
        out["node"] = [self.node_id] * len(batch["index"])
        return out


def map_files(
    info: ClusterInfo,
    paths: Sequence[str | Path],
    prepare: Callable[[dict[str, Any]], dict[str, Any]],
    actor: type[ModelActor],
    actor_kwargs: dict[str, Any],
    *,
    batch_size: int,
    num_gpus: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Prepare files in Ray tasks, run them through an actor pool, and stream the batches back.

    Args:
        info: the connected cluster (sizes the pool: one actor per live node).
        paths: the files, listed by the driver; every node must see them at the same path.
        prepare: a batch function `{"index", "path"} -> {"index", "image", "error", ...}`.
        actor: the `ModelActor` subclass holding the model.
        actor_kwargs: its `setup` arguments (large values are shipped once per actor).
        batch_size: rows per batch.
        num_gpus: GPUs per actor (0 on CPU nodes). Defaults to 0.

    Yields:
        The actor's output batches (numpy columns, with "node").
    """
    import ray.data
    from ray.data import ActorPoolStrategy

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    items = [{"index": i, "path": str(p)} for i, p in enumerate(paths)]
    blocks = max(1, min(len(items) // batch_size + 1, 200))
    pool = max(1, len(info.alive))
    with warnings.catch_warnings():
        # Ray 2.60 marks every extra remote argument deprecated; SPREAD has no named one yet.
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = (
            ray.data.from_items(items, override_num_blocks=blocks)
            .map_batches(prepare, batch_size=batch_size, batch_format="numpy", num_cpus=PREPARE_CPUS)
            .map_batches(
                actor,
                fn_constructor_kwargs=actor_kwargs,
                batch_size=batch_size,
                batch_format="numpy",
                compute=ActorPoolStrategy(size=pool),
                num_cpus=ACTOR_CPUS,
                num_gpus=num_gpus,
                scheduling_strategy="SPREAD",  # one actor per node, not two on the first
            )
        )
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
