"""The fast path: LiteRT extraction and its TensorFlow twin agree; trainings record what they ran on.

Real photos (the bundled parity photos, and the same scaled up so that JPEG
draft mode decodes them at a reduced scale) go through both decoders and both
runtimes. Tolerances:

- same pixels, LiteRT vs TensorFlow runtime: `PARITY_TOLERANCE` (1e-4), the
  issue's bar for a faithful conversion;
- tf.data decode vs PIL decode of the same geometry: both are libjpeg's
  accurate IDCT, then a central crop and an antialiased bicubic resize; they
  differ by rounding inside the resize (PIL keeps a uint8 intermediate, TF
  floats), most where the resize shrinks a lot. Measured: mean pixel
  difference 0.005 (1.5x shrink) to 0.13 (10x), features within 0.11 here and
  0.18 over 300 demo photos (features reach ~4.5). So the geometry is checked
  on pixels, `PIXEL_TOLERANCE` 0.5 grey levels on average (a crop off by one
  source pixel moves these photos by 7-13), and features within
  `DECODER_TOLERANCE` 0.25;
- draft vs full decode of a large JPEG (decoded at a reduced scale, with the
  2x margin of `DRAFT_MARGIN`): measured within 0.043, cosine 0.99994;
  `DRAFT_TOLERANCE` is 0.1. With a 1x margin the same photos drifted by up to
  0.6, which this test would catch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.core.rundir import RunDir
from engine.data.geometry import draft_min_side
from engine.data.images import load_image
from engine.models.loading import PARITY_IMAGES_DIR, PARITY_TOLERANCE, load_feature_runtime
from engine.models.runtime import FeatureRuntime
from engine.train import retrain as retrain_module
from engine.train.bottlenecks import extract_bottlenecks
from engine.train.cache import feature_key
from engine.train.config import TrainConfig
from engine.train.retrain import retrain
from engine.train.tfdata import iter_tf_batches
from tests.support.factories import write_class_folders
from tests.support.tiny_model import TinyRun

BACKBONE = "efficientnet_lite0"
PIXEL_TOLERANCE = 0.5
DECODER_TOLERANCE = 0.25
DRAFT_TOLERANCE = 0.1
TRAIN_SIZE = 128  # the smallest input keeps the training runs quick


@dataclass(frozen=True)
class Record:
    """What extraction reads of an `ImageRecord`."""

    path: Path
    rel_path: str
    sha256: str
    format: str = "JPEG"


def _record(path: Path, fmt: str = "JPEG") -> Record:
    return Record(path, path.name, hashlib.sha256(path.read_bytes()).hexdigest(), fmt)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Record]:
    """The parity photos (640x427), and each scaled up 6x (a phone photo's size)."""
    folder = tmp_path_factory.mktemp("photos")
    out = []
    for source in sorted(PARITY_IMAGES_DIR.glob("*.jpg")):
        out.append(_record(source))
        with Image.open(source) as image:
            large = image.resize((image.width * 6, image.height * 6), Image.Resampling.BICUBIC)
        target = folder / f"large-{source.name}"
        large.save(target, quality=92)
        out.append(_record(target))
    return out


@pytest.fixture(scope="module")
def lite() -> FeatureRuntime:
    loaded = load_feature_runtime(BACKBONE)
    assert loaded.runtime == "litert", loaded.notice
    return loaded


@pytest.fixture(scope="module")
def tensorflow() -> FeatureRuntime:
    return load_feature_runtime(BACKBONE, prefer="tensorflow")


def _prepared_tf(records: list[Record], backbone: Any, size: int) -> np.ndarray:
    rows: dict[int, np.ndarray] = {}
    for indices, batch, failures in iter_tf_batches(records, backbone, size, batch_size=3):
        assert not failures and batch is not None
        rows.update(zip(indices, batch, strict=True))
    return np.stack([rows[i] for i in range(len(records))])


def _prepared_pil(records: list[Record], backbone: Any, size: int, *, draft: bool) -> np.ndarray:
    min_side = draft_min_side(size, backbone.crop_fraction) if draft else None
    return np.stack([backbone.prepare(load_image(r.path, min_side=min_side), size) for r in records])


# ---------------------------------------------------------------- extraction


def test_litert_extraction_gives_the_tensorflow_features_on_real_photos(
    photos, lite, tensorflow
) -> None:
    on_lite = extract_bottlenecks(photos, lite)
    on_tf = extract_bottlenecks(photos, tensorflow)
    assert on_lite.kept == on_tf.kept == list(range(len(photos)))
    assert np.max(np.abs(on_lite.features - on_tf.features)) < PARITY_TOLERANCE


def test_tf_data_decoder_matches_pil_full_decode_of_the_same_geometry(photos, lite) -> None:
    backbone, size = lite.backbone, lite.input_size
    by_tf = _prepared_tf(photos, backbone, size)
    by_pil = _prepared_pil(photos, backbone, size, draft=False)
    pixel_gaps = np.abs(by_tf.astype(np.int16) - by_pil).mean(axis=(1, 2, 3))
    assert pixel_gaps.max() < PIXEL_TOLERANCE
    assert np.max(np.abs(lite.features(by_tf) - lite.features(by_pil))) < DECODER_TOLERANCE


def test_draft_decoding_of_large_jpegs_keeps_the_features(photos, lite) -> None:
    large = [r for r in photos if r.rel_path.startswith("large-")]
    backbone, size = lite.backbone, lite.input_size
    min_side = draft_min_side(size, backbone.crop_fraction)
    for record in large:  # large enough that draft mode decodes them at 1/2 or less
        with Image.open(record.path) as image:
            assert min(image.size) >= 2 * min_side
    draft = lite.features(_prepared_pil(large, backbone, size, draft=True))
    full = lite.features(_prepared_pil(large, backbone, size, draft=False))
    assert np.max(np.abs(draft - full)) < DRAFT_TOLERANCE


def test_tf_decoder_keeps_and_skips_the_same_images_as_pil(tmp_path, photos, tensorflow) -> None:
    png = tmp_path / "flower.png"
    rotated = tmp_path / "rotated.jpg"
    broken = tmp_path / "broken.jpg"
    with Image.open(photos[0].path) as image:
        image.save(png)
        exif = Image.Exif()
        exif[0x0112] = 6  # stored sideways: tf.io would ignore this
        image.save(rotated, exif=exif)
    broken.write_bytes(photos[0].path.read_bytes()[:2000])
    records = [photos[0], _record(png, "PNG"), _record(rotated), _record(broken)]
    by_pil = extract_bottlenecks(records, tensorflow, decoder="pil")
    by_tf = extract_bottlenecks(records, tensorflow, decoder="tf")
    assert by_tf.kept == by_pil.kept == [0, 1, 2]
    assert [path for path, _ in by_tf.skipped] == [path for path, _ in by_pil.skipped] == ["broken.jpg"]
    assert np.max(np.abs(by_tf.features - by_pil.features)) < DECODER_TOLERANCE


def test_unknown_decoder_is_refused_with_the_choices(photos, lite) -> None:
    with pytest.raises(ValueError, match="decoder='cv2' is unknown; choose one of pil, tf"):
        extract_bottlenecks(photos, lite, decoder="cv2")


def test_decoders_keep_separate_caches(lite) -> None:
    by_pil = feature_key(lite.backbone, lite.input_size)
    by_tf = feature_key(lite.backbone, lite.input_size, decoder="tf")
    assert by_pil != by_tf


# ---------------------------------------------------------------- a default run


@pytest.fixture(scope="module")
def trained(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDir]:
    """A tiny default run per runtime (no --export): the session's shared run is the LiteRT one.

    The TensorFlow one is trained here, on the same data and settings but
    `runtime="tensorflow"`: that setting is what these tests are about.
    """
    tmp = tmp_path_factory.mktemp("tensorflow-run")
    config = tiny_run.config.replace(
        runtime="tensorflow", how_many_training_steps=5, bottleneck_dir=str(tmp / "bottlenecks")
    )
    run = RunDir.create(tmp / "runs", backbone=BACKBONE)
    retrain(config, run)
    return {"litert": tiny_run.run, "tensorflow": run}


@pytest.mark.slow
def test_training_writes_the_float_tflite_without_being_asked(trained) -> None:
    run = trained["litert"]
    export_dir = Path(run.export_dir)
    assert (export_dir / "model.tflite").is_file()
    assert not (export_dir / "model_int8.tflite").exists()
    assert not (export_dir / "saved_model").exists()
    assert set(run.read_report()["exports"]) == {"tflite"}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "decoder"), [("litert", "pil"), ("tensorflow", "tf")])
def test_config_records_the_runtime_and_decoder_used(trained, name: str, decoder: str) -> None:
    config = trained[name].read_config()
    assert (config["runtime"], config["bottleneck_decoder"]) == (name, decoder)
    assert trained[name].read_report()["runtime"] == name


@pytest.mark.slow
def test_events_show_done_before_the_export_phase(trained) -> None:
    lines = trained["litert"].events_path.read_text().splitlines()
    phases = [e["phase"] for e in map(json.loads, lines) if e["event"] == "phase"]
    assert phases[-2:] == ["done", "export"]  # usable first, exported after


class _CountingRuntime:
    """The real runtime, recording the batch sizes it is given (a spy, not a stub)."""

    def __init__(self, inner: FeatureRuntime) -> None:
        self.inner = inner
        self.batch_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def features(self, batch: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(batch))
        return self.inner.features(batch)


@pytest.mark.slow
def test_augmented_training_computes_features_on_the_same_litert_runtime(tmp_path, monkeypatch) -> None:
    spies: list[_CountingRuntime] = []
    real_loader = load_feature_runtime

    def load(*args: Any, **kwargs: Any) -> _CountingRuntime:
        spies.append(_CountingRuntime(real_loader(*args, **kwargs)))
        return spies[-1]

    monkeypatch.setattr(retrain_module, "load_feature_runtime", load)
    data = write_class_folders(tmp_path / "data", {"red": 5, "green": 5})
    config = TrainConfig(
        image_dir=str(data), architecture=BACKBONE, image_size=TRAIN_SIZE, flip_left_right=True,
        how_many_training_steps=3, train_batch_size=7, testing_percentage=20,
        validation_percentage=20, seed=3, bottleneck_dir=str(tmp_path / "bottlenecks"),
    )  # fmt: skip
    run = RunDir.create(tmp_path / "runs", backbone=BACKBONE)
    retrain(config, run)
    assert [spy.runtime for spy in spies] == ["litert"]
    assert spies[0].batch_sizes.count(7) == 3  # one augmented batch per step
    assert run.read_config()["runtime"] == "litert"
