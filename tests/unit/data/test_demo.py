"""The generated demo dataset: complete, deterministic, atomic, and honest about colour."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import StudioError
from engine.data.demo import (
    DEMO_CLASSES,
    DEMO_IMAGES_PER_CLASS,
    DEMO_MANIFEST,
    ensure_demo_dataset,
    render_demo_image,
    write_demo_dataset,
)
from engine.data.images import load_image
from engine.data.scan import scan_dataset


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_demo_dataset(tmp_path_factory.mktemp("demo-home") / "demo")


def test_demo_has_five_trainable_classes_of_realistic_photos(demo: Path) -> None:
    dataset = scan_dataset(demo, use_cache=False)
    assert dataset.labels == sorted(DEMO_CLASSES)
    assert [c.count for c in dataset.classes] == [DEMO_IMAGES_PER_CLASS] * 5
    assert dataset.trainable and dataset.problems == [] and dataset.duplicates == []
    assert dataset.stats["formats"] == {"JPEG": 5 * DEMO_IMAGES_PER_CLASS}
    assert dataset.stats["width"]["min"] >= 240 and dataset.stats["width"]["max"] <= 500
    assert dataset.stats["height"]["min"] >= 240 and dataset.stats["height"]["max"] <= 500


def test_demo_images_vary_in_size(demo: Path) -> None:
    sizes = {(r.width, r.height) for r in scan_dataset(demo).images}
    assert len(sizes) > 100


def test_demo_drawing_is_deterministic_for_a_seed() -> None:
    first = np.asarray(render_demo_image("tulips", 3, seed=11))
    assert np.array_equal(first, np.asarray(render_demo_image("tulips", 3, seed=11)))
    assert not np.array_equal(first, np.asarray(render_demo_image("tulips", 4, seed=11)))


def test_demo_files_are_identical_across_generations(tmp_path: Path) -> None:
    def digest(folder: Path) -> str:
        return hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted(folder.rglob("*.jpg")))
        ).hexdigest()

    a = write_demo_dataset(tmp_path / "a", images_per_class=2)
    b = write_demo_dataset(tmp_path / "b", images_per_class=2)
    assert digest(a) == digest(b)


def test_ensure_demo_dataset_reuses_a_complete_demo(demo: Path) -> None:
    stamp = (demo / DEMO_MANIFEST).stat().st_mtime_ns
    assert ensure_demo_dataset(demo) == demo
    assert (demo / DEMO_MANIFEST).stat().st_mtime_ns == stamp


def test_interrupted_generation_leaves_nothing_behind(tmp_path: Path) -> None:
    def crash(progress: object) -> None:
        if getattr(progress, "done", 0) >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_demo_dataset(tmp_path / "demo", images_per_class=4, progress=crash)
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_a_folder_holding_other_files(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(StudioError, match="already holds other files"):
        ensure_demo_dataset(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def _mean_colour(path: Path) -> np.ndarray:
    return np.asarray(load_image(path), dtype=np.float32).reshape(-1, 3).mean(axis=0)


def _nearest_class_mean(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    classes = np.unique(train_y)
    means = np.stack([train_x[train_y == c].mean(axis=0) for c in classes])
    return classes[np.argmin(((test_x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)]


@pytest.mark.slow
def test_average_colour_scores_far_below_the_pretrained_backbone(demo: Path) -> None:
    # The same nearest-class-mean classifier on both: only the features differ.
    from engine.models.networks import build_feature_extractor
    from engine.models.registry import DEFAULT_BACKBONE, get_backbone

    dataset = scan_dataset(demo)
    train, test = dataset.split("train"), dataset.split("test")
    train_y = np.array([dataset.labels.index(r.label) for r in train])
    test_y = np.array([dataset.labels.index(r.label) for r in test])

    colour_pred = _nearest_class_mean(
        np.stack([_mean_colour(r.path) for r in train]),
        train_y,
        np.stack([_mean_colour(r.path) for r in test]),
    )
    colour_accuracy = float((colour_pred == test_y).mean())

    backbone = get_backbone(DEFAULT_BACKBONE)
    extractor = build_feature_extractor(DEFAULT_BACKBONE)

    def features(records: list) -> np.ndarray:
        batch = np.stack(
            [backbone.prepare(load_image(r.path, min_side=backbone.input_size)) for r in records]
        )
        return np.asarray(extractor.predict(batch, batch_size=32, verbose=0))

    backbone_pred = _nearest_class_mean(features(train), train_y, features(test))
    backbone_accuracy = float((backbone_pred == test_y).mean())
    print(f"demo test split: colour {colour_accuracy:.3f}, {DEFAULT_BACKBONE} {backbone_accuracy:.3f}")
    assert backbone_accuracy - colour_accuracy >= 0.20
    assert backbone_accuracy >= 0.95
