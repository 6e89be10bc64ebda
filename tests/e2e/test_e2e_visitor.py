"""What a visitor can do, in a real browser: hostile names, the exposure gate, TensorBoard's lifetime.

- Class folders named like Markdown images and HTML are shown as their text,
  and the browser requests nothing from the hosts they name.
- `streamlit run --server.address 0.0.0.0` asks for the password before
  serving any page.
- A TensorBoard started from the page stops when the server gets SIGTERM
  (it runs in its own session, so only the app's exit hook can stop it).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.core.procs import process_alive
from tests.e2e.harness import open_app, start_server, wait_for_idle, wait_until
from tests.support.factories import image_bytes, make_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Names a Linux folder can have that would be an image, HTML or a link as Markdown.
HOSTILE = [
    "![x](https:example.invalid)",
    "<img src=https:example.invalid>",
    "[y](https:example.invalid)",
]


def hostile_dataset(root: Path) -> Path:
    for index, name in enumerate(HOSTILE):
        (root / name).mkdir(parents=True)
        for variant in range(3):
            data = image_bytes(make_image(index, variant))
            (root / name / f"{name}{variant}.jpg").write_bytes(data)
    return root


def test_hostile_folder_names_are_text_and_fetch_nothing(page, server, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    root = hostile_dataset(tmp_path / "hostile")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_app(page, server)
    page.get_by_text("Local folder", exact=True).click()
    wait_for_idle(page)
    box = page.get_by_label("Folder with one sub-folder per class")
    box.fill(str(root))
    box.press("Enter")
    wait_for_idle(page)
    main = page.get_by_test_id("stMain")
    for name in HOSTILE:
        # the class heading names the folder as it is, and each photo's caption too
        expect(main.get_by_text(f"folder {name}", exact=False).first).to_be_visible()
        expect(main.get_by_text(f"{name}0.jpg", exact=True)).to_be_visible()
    assert main.locator("a[href*='example.invalid'], img[src*='example.invalid']").count() == 0
    assert not [url for url in requested if "example.invalid" in url]
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_an_exposed_server_asks_for_the_password_before_any_page(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from engine.core.paths import cache_dir

    exposed = start_server(
        tmp_path / "home",
        env={
            "RETRAIN_STUDIO_CACHE": str(cache_dir()),
            "RETRAIN_STUDIO_DATA_ROOTS": str(tmp_path),
            "RETRAIN_STUDIO_PASSWORD": "e2e-secret",
        },
        options=("--server.address", "0.0.0.0"),
    )
    try:
        open_app(page, exposed, "train")  # a deep link is gated too
        expect(page.get_by_role("heading", name="Retrain Studio", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="Train", exact=True)).to_have_count(0)
        expect(page.get_by_role("button", name="Start training")).to_have_count(0)
        password = page.get_by_label("Password", exact=True)
        password.fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        wait_for_idle(page)
        expect(page.get_by_text("Wrong password.")).to_be_visible()
        password.fill("e2e-secret")
        page.get_by_role("button", name="Sign in").click()
        wait_for_idle(page)
        expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
    finally:
        exposed.stop()


def test_tensorboard_started_from_the_page_stops_when_the_server_is_terminated(
    page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from engine.core.paths import cache_dir

    home = tmp_path / "home"
    app = start_server(home, env={"RETRAIN_STUDIO_CACHE": str(cache_dir())})
    try:
        open_app(page, app, "tensorboard")
        page.get_by_role("button", name="Start TensorBoard").click()
        expect(page.get_by_role("link", name="Open TensorBoard")).to_be_visible(timeout=150_000)
        (record,) = json.loads((home / "tensorboard.json").read_text())["instances"]
        assert record["owner_pid"] == app.process.pid
        assert process_alive(record["pid"], record["pid_start"])
        os.kill(app.process.pid, signal.SIGTERM)  # the server only: TensorBoard has its own session
        app.process.wait(timeout=60)
        wait_until(
            lambda: not process_alive(record["pid"], record["pid_start"]),
            timeout_s=30,
            what="TensorBoard to stop with the app",
        )
        assert "stopped 1 TensorBoard server(s) on exit" in app.log_tail()
    finally:
        app.stop()
