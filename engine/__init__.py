"""Retrain Studio's engine: datasets, backbones, training, prediction, runs.

A plain Python package: it never imports Streamlit, and it imports TensorFlow
only inside the functions that need it, so `import engine` stays light. The
names below are the public entry points (loaded on first use); the layered
subpackages (`core`, `data`, `models`, `serve`, `train`, `runs`) hold the rest
(`engine.train` is the training subpackage; `engine.retrain` is the function).

    import engine

    dataset = engine.scan_dataset(engine.demo_dataset())
    result = engine.retrain(engine.TrainConfig(how_many_training_steps=500, seed=1))
    predictor = engine.Predictor.from_run(result.run.path)
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.core.paths import engine_version

__version__ = engine_version()

__all__ = [
    "Dataset",
    "Predictor",
    "StudioError",
    "TrainConfig",
    "TrainedRun",
    "demo_dataset",
    "list_backbones",
    "list_runs",
    "retrain",
    "runs_dir",
    "scan_dataset",
]
# public name -> the module that defines it
_PUBLIC = {
    "scan_dataset": "engine.data.scan",
    "Dataset": "engine.data.dataset",
    "demo_dataset": "engine.api",
    "list_backbones": "engine.models.registry",
    "TrainConfig": "engine.train.config",
    "retrain": "engine.api",
    "TrainedRun": "engine.api",
    "Predictor": "engine.serve.inference",
    "list_runs": "engine.runs.listing",
    "runs_dir": "engine.core.paths",
    "StudioError": "engine.core.errors",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
