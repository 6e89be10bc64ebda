"""Grad-CAM heatmaps through the trained head: faithful to the model, on the photo, quick, TF only on demand."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine.core.errors import StudioError
from engine.serve.gradcam import overlay_png


def test_the_overlay_is_a_png_of_the_photo_with_the_heat_blended_in() -> None:
    photo = np.full((64, 64, 3), 128, np.uint8)
    cam = np.zeros((4, 4), np.float32)
    cam[0, 0] = 1.0
    image = np.asarray(Image.open(io.BytesIO(overlay_png(photo, cam))).convert("RGB")).astype(int)
    assert image.shape == (64, 64, 3)
    assert image[2, 2, 0] > image[60, 60, 0]  # hot corner is redder than the cold one


def test_importing_the_module_does_not_load_tensorflow() -> None:
    code = (
        "import sys, engine.serve.gradcam; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_the_heatmap_explains_the_models_own_answer(tiny_run) -> None:
    from engine.serve.gradcam import Heatmapper
    from engine.serve.inference import Predictor

    maker = Heatmapper(tiny_run.run.path)
    photo = min((tiny_run.data_dir / "red").iterdir())
    prepared = maker.prepare(photo)
    heat = maker(photo)
    # the class scores rebuilt from the feature map are the full model's: it is the map the head sees
    assert np.allclose(maker.probabilities(prepared).max(), heat.probability, atol=1e-4)
    predicted = Predictor.from_run(tiny_run.run.path, prefer="tensorflow").predict(photo, top_k=1)
    assert heat.label == predicted.label
    assert heat.cam.ndim == 2 and heat.cam.min() >= 0 and heat.cam.max() <= 1
    assert Image.open(io.BytesIO(heat.overlay)).size == (maker.size, maker.size)
    with pytest.raises(StudioError, match="out of range"):
        maker(photo, class_index=99)
