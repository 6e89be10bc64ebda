"""The dashboard in a real headless Chromium against `streamlit run`, one server for the module.

The flow a user follows: look at the demo data, train a tiny model while
watching it (and reload mid-run), try it on photos, see the runs, open
TensorBoard. Each page's screenshot goes to docs/screenshots/.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.harness import http_get, open_app, screenshot, wait_for_idle, wait_until
from ui.browse import SAMPLES_PER_CLASS

pytestmark = pytest.mark.e2e

# Tiny but long enough to watch and reload: augmentation bypasses the bottleneck
# cache, so each step runs the backbone on its batch (a few steps a second).
STEPS = 120
TRAIN_TIMEOUT_MS = 300_000
STEP_TEXT = re.compile(rf"Step (\d+) of {STEPS}")


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def fill_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Tab")


def current_step(page) -> int:
    """The step the Train page shows now (0 before the first)."""
    texts = page.get_by_test_id("stProgress").all_inner_texts()
    found = [int(m.group(1)) for t in texts if (m := STEP_TEXT.search(t))]
    return max(found, default=0)


def run_ids(server) -> list[str]:
    from engine.runs.listing import list_runs

    return [r.run_id for r in list_runs(server.home / "runs")]


def upload(page, files: list[dict]) -> None:
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(files)


def test_dataset_page_opens_on_the_demo_with_a_grid_per_class(page, server) -> None:
    open_app(page, server)
    expect(page.get_by_role("heading", name="Dataset", level=1)).to_be_visible()
    for label in ("daisy", "dandelion", "roses", "sunflowers", "tulips"):
        expect(page.get_by_text(re.compile(rf"^{label} · \d+ photos$"))).to_be_visible()
    expect(page.get_by_test_id("stImage")).to_have_count(5)
    expect(page.get_by_test_id("stImage").locator("img")).to_have_count(5 * SAMPLES_PER_CLASS)
    expect(page.get_by_test_id("stSidebar")).to_contain_text("demo (built in)")
    screenshot(page, "dataset")


def test_training_advances_live_and_a_reload_reattaches(page, server) -> None:
    open_app(page, server, "train")
    fill_number(page, "Training steps", STEPS)
    fill_number(page, "Batch size", 8)
    fill_number(page, "Eval every (steps)", 20)
    page.get_by_text("Flip left-right").click()
    page.get_by_text("Also export a SavedModel, an int8 TFLite and an ONNX model").click()
    page.get_by_role("button", name="Start training").click()

    wait_until(lambda: current_step(page) > 0, timeout_s=TRAIN_TIMEOUT_MS / 1000, what="the first step")
    first = current_step(page)
    wait_until(lambda: current_step(page) > first, timeout_s=60, what="the step counter to advance")
    screenshot(page, "train")

    (run_id,) = run_ids(server)
    before_reload = current_step(page)
    page.reload()
    expect(page.get_by_role("heading", name=f"Run {run_id}")).to_be_visible(timeout=60_000)
    wait_until(
        lambda: current_step(page) > before_reload, timeout_s=60, what="the reattached step counter"
    )
    assert run_ids(server) == [run_id], "a reload must not start a second job"
    expect(page.get_by_role("button", name="Cancel training")).to_be_visible()

    expect(page.get_by_text("Final test accuracy")).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()
    wait_for_idle(page)
    expect(page.get_by_role("button", name="Cancel training")).to_have_count(0)
    expect(page.get_by_role("button", name="labels.txt")).to_be_visible()
    # the per-class table, then what each saved model costs once the follow-up exports land
    expect(page.get_by_test_id("stDataFrame")).to_have_count(2, timeout=TRAIN_TIMEOUT_MS)
    expect(page.get_by_text("What each saved model costs")).to_be_visible()
    wait_for_idle(page)
    expect(page.get_by_text("Features computed on LiteRT")).to_be_visible()
    screenshot(page, "train-report")


def test_predict_shows_probability_bars_for_a_photo(page, server) -> None:
    open_app(page, server, "predict")
    photo = max((server.home / "datasets" / "demo" / "sunflowers").glob("*.jpg"))
    upload(page, [{"name": photo.name, "mimeType": "image/jpeg", "buffer": photo.read_bytes()}])
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1, timeout=120_000)
    expect(page.get_by_text(re.compile(r"\d+\.\d% · \d+\.\d ms$"))).to_be_visible()
    # the trainer leaves a float TFLite model: Predict runs it on LiteRT, not TensorFlow
    expect(page.get_by_text(re.compile(r"^model\.tflite on litert"))).to_be_visible()
    wait_for_idle(page)
    screenshot(page, "predict")


def test_predict_explains_a_non_image_and_still_predicts_the_photo(page, server) -> None:
    open_app(page, server, "predict")
    upload(
        page,
        [
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a photo"},
            {"name": "red.png", "mimeType": "image/png", "buffer": png((210, 40, 40))},
        ],
    )
    expect(page.get_by_text(re.compile(r"^notes\.txt: not a usable image"))).to_be_visible(
        timeout=120_000
    )
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1)


def test_runs_page_lists_the_run_and_compares_curves(page, server) -> None:
    open_app(page, server, "runs")
    expect(page.get_by_role("heading", name="Compare two runs")).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2)
    wait_for_idle(page)
    screenshot(page, "runs")


def test_tensorboard_starts_and_serves_its_page_over_http(page, server) -> None:
    open_app(page, server, "tensorboard")
    page.get_by_role("button", name="Start TensorBoard").click()
    link = page.get_by_role("link", name="Open TensorBoard")
    expect(link).to_be_visible(timeout=150_000)
    url = link.get_attribute("href")
    assert url and url.startswith("http://127.0.0.1:")
    status, body = http_get(url)
    assert status == 200 and "tensorboard" in body.lower()
    wait_for_idle(page)
    screenshot(page, "tensorboard")
    page.get_by_role("button", name="Stop TensorBoard").click()
    expect(page.get_by_role("button", name="Start TensorBoard")).to_be_visible(timeout=30_000)
