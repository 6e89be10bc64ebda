"""`python -m engine serve`: a real server process on 127.0.0.1 answering the session's tiny run.

Every test here but the last two talks HTTP to a `python -m engine serve`
subprocess (tests/support/serving.py) and checks its answers against the same
run's `Predictor` in this process. The hostile inputs (a file that is not an
image, a decompression bomb's header, a body over the limit, a wrong token)
must get a 4xx JSON message, never a traceback nor a path on the server.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pytest

from engine.serve.inference import Predictor
from tests.support import serving
from tests.support.cli import REPO_ROOT, run_engine
from tests.support.factories import png_with_claimed_size
from tests.support.tiny_model import TinyRun
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow  # the session's tiny run is a real training

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def photos(tiny_run: TinyRun) -> list[tuple[str, bytes]]:
    """Every photo of the tiny dataset, `(name, bytes)`, in a fixed order."""
    files = sorted(tiny_run.data_dir.glob("*/*.jpg"))
    return [(f.name, f.read_bytes()) for f in files]


@pytest.fixture(scope="module")
def expected(tiny_run: TinyRun, photos) -> dict[str, tuple[str, list[float], bool, float | None]]:
    """What the run's Predictor says in this process: name -> (label, probabilities, unknown, score)."""
    predictor = Predictor.from_run(tiny_run.run.path)
    out = {}
    for name, data in photos:
        prediction = predictor.predict(data, top_k=3)
        out[name] = (
            prediction.label, [float(p) for p in prediction.probabilities],
            prediction.unknown, prediction.unknown_score,
        )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def server(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving.serving(tiny_run.run.path, log=log) as running:
        yield running


@pytest.fixture(scope="module")
def guarded(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("serve-token") / "serve.log"
    with serving.serving(tiny_run.run.path, log=log, token=TOKEN) as running:
        yield running


def assert_matches(answer: dict, expected: dict, labels: list[str]) -> None:
    label, probabilities, unknown, score = expected[answer["name"]]
    assert answer["label"] == label
    assert answer["unknown"] is unknown  # the run's unknown rule, as in process
    assert (answer["unknown_score"] is None) == (score is None)
    if score is not None:
        assert answer["unknown_score"] == pytest.approx(score, rel=1e-4, abs=1e-6)
    for entry in answer["top_k"]:
        assert entry["probability"] == pytest.approx(
            probabilities[labels.index(entry["label"])], abs=1e-5
        )


def assert_no_leak(text: str, tiny_run: TinyRun) -> None:
    assert "Traceback" not in text
    assert str(tiny_run.folder) not in text and str(REPO_ROOT) not in text


def test_multipart_photos_each_get_the_in_process_predictors_answer(server, photos, expected) -> None:
    body, content_type = serving.multipart(photos[:5])
    status, answer = server.call("POST", "/predict?top_k=2", body, content_type=content_type)
    assert status == 200, answer
    assert [a["name"] for a in answer["images"]] == [name for name, _ in photos[:5]]
    labels = server.call("GET", "/model")[1]["labels"]
    for image in answer["images"]:
        assert_matches(image, expected, labels)
        assert len(image["top_k"]) == 2
        assert image["probability"] == image["top_k"][0]["probability"]
        assert image["unknown_score"] is not None, "the tiny run has an unknown rule"
        assert image["seconds"] > 0
    assert answer["count"] == 5 and answer["seconds"] >= sum(i["seconds"] for i in answer["images"])


def test_noise_is_answered_unknown_with_its_nearest_classes(server) -> None:
    import io

    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    status, answer = server.call("POST", "/predict", buffer.getvalue(), content_type="image/png")
    assert status == 200, answer
    (image,) = answer["images"]
    assert image["unknown"] is True and image["unknown_score"] is not None
    assert image["label"] in {entry["label"] for entry in image["top_k"]}


def test_a_raw_image_body_gets_its_answer(server, photos, expected) -> None:
    name, data = photos[-1]
    status, answer = server.call("POST", f"/predict?name={name}", data, content_type="image/jpeg")
    assert status == 200, answer
    (image,) = answer["images"]
    assert image["name"] == name
    assert_matches(image, expected, server.call("GET", "/model")[1]["labels"])
    assert len(image["top_k"]) == 3  # top_k defaults to 5, at most the classes there are


def test_concurrent_clients_all_get_the_right_answers(server, photos, expected) -> None:
    labels = server.call("GET", "/model")[1]["labels"]

    def one(index: int) -> dict:
        name, data = photos[index % len(photos)]
        status, answer = server.call("POST", f"/predict?name={name}", data, content_type="image/jpeg")
        assert status == 200, answer
        return answer["images"][0]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(96)))
    assert len(answers) == 96
    for answer in answers:
        assert_matches(answer, expected, labels)


def test_health_says_the_model_is_loaded(server) -> None:
    assert server.call("GET", "/health") == (
        200,
        {"ok": True, "model_loaded": True, "runtime": "litert"},
    )


def test_model_describes_the_run_from_its_config_and_report(server, tiny_run: TinyRun) -> None:
    status, info = server.call("GET", "/model")
    assert status == 200
    assert info["labels"] == tiny_run.run.read_labels()
    assert info["run_id"] == tiny_run.run.run_id
    assert info["backbone"] == "efficientnet_lite0"
    assert info["input_size"] == 128
    assert info["test_accuracy"] == pytest.approx(tiny_run.run.read_report()["test_accuracy"])
    assert info["model_file"] == "export/model.tflite"  # never the path on the server


def test_a_file_that_is_not_an_image_is_a_422_naming_it(server, photos, tiny_run) -> None:
    body, content_type = serving.multipart([photos[0], ("notes.txt", b"this is not a photo")])
    status, answer = server.call("POST", "/predict", body, content_type=content_type)
    assert status == 422
    assert "notes.txt" in answer["error"] and "send JPEG" in answer["error"]
    good, bad = answer["images"]
    assert good["label"] and "not a usable image" in bad["error"]
    assert_no_leak(str(answer), tiny_run)


def test_a_decompression_bomb_header_is_refused_before_decoding(server, tiny_run) -> None:
    status, answer = server.call(
        "POST", "/predict", png_with_claimed_size(40_000, 40_000), content_type="image/png"
    )
    assert status == 422
    assert "decompression bomb" in answer["images"][0]["error"]
    assert_no_leak(str(answer), tiny_run)


@pytest.mark.parametrize(
    ("path", "content_type", "status", "says"),
    [
        ("/predict", "text/plain", 415, "is not a photo"),
        ("/predict?top_k=many", "image/jpeg", 400, "top_k"),
        ("/predict?top_k=0", "image/jpeg", 400, "top_k"),
    ],
)
def test_a_bad_request_gets_a_4xx_saying_what_to_send(
    server, photos, path, content_type, status, says
) -> None:
    code, answer = server.call("POST", path, photos[0][1], content_type=content_type)
    assert code == status and says in answer["error"]


def test_an_empty_multipart_body_says_to_send_file_fields(server) -> None:
    body, content_type = serving.multipart([])
    code, answer = server.call("POST", "/predict", body, content_type=content_type)
    assert code == 400 and "file field" in answer["error"]


def test_an_unknown_route_is_a_json_404_listing_the_routes(server) -> None:
    code, answer = server.call("GET", "/admin")
    assert code == 404 and "POST /predict" in answer["error"]


def test_a_body_declared_over_the_limit_is_a_413_before_it_is_sent(server) -> None:
    conn = http.client.HTTPConnection(serving.HOST, server.port, timeout=10)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Type", "image/jpeg")
    conn.putheader("Content-Length", str(30 * 1024**2))
    conn.endheaders()
    conn.send(b"\xff\xd8" + b"x" * 1000)  # the rest never comes: the answer must not wait for it
    response = conn.getresponse()
    assert response.status == 413
    assert "over the 25 MB limit" in response.read().decode()
    conn.close()


def test_a_chunked_body_is_cut_off_at_the_limit(server) -> None:
    sent = []

    def chunks():
        for _ in range(200):  # 200 MB if it were all read
            sent.append(1)
            yield b"y" * 1024**2

    conn = http.client.HTTPConnection(serving.HOST, server.port, timeout=30)
    try:
        conn.request("POST", "/predict", body=chunks(), headers={"Content-Type": "image/jpeg"})
        response = conn.getresponse()
        status, text = response.status, response.read().decode()
    except (BrokenPipeError, ConnectionResetError):
        status, text = 413, "reset"  # the server stopped reading; its answer may be lost with the socket
    finally:
        conn.close()
    assert status == 413, text
    assert len(sent) < 200


def test_the_server_answers_after_the_hostile_requests(server, photos) -> None:
    status, answer = server.call("POST", "/predict", photos[0][1], content_type="image/jpeg")
    assert status == 200 and answer["images"][0]["label"]


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN[:-1]])
@pytest.mark.parametrize("path", ["/health", "/model", "/predict"])
def test_with_a_token_a_request_without_it_is_a_401(guarded, token, path) -> None:
    method = "POST" if path == "/predict" else "GET"
    status, answer = guarded.call(method, path, b"x", content_type="image/jpeg", token=token)
    assert status == 401 and "Authorization: Bearer" in answer["error"]


def test_with_the_token_requests_are_answered(guarded, photos) -> None:
    status, answer = guarded.call("POST", "/predict", photos[0][1], content_type="image/jpeg")
    assert status == 200 and answer["images"][0]["label"]


def test_an_oversized_body_without_the_token_is_a_401_unread(guarded) -> None:
    headers = {"Content-Length": str(1024**3)}
    conn = http.client.HTTPConnection(serving.HOST, guarded.port, timeout=10)
    conn.putrequest("POST", "/predict")
    for key, value in {"Content-Type": "image/jpeg", **headers}.items():
        conn.putheader(key, value)
    conn.endheaders()
    assert conn.getresponse().status == 401
    conn.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_a_host_off_loopback_without_a_token_refuses_to_start(tiny_run, host, monkeypatch) -> None:
    monkeypatch.delenv("RETRAIN_STUDIO_TOKEN", raising=False)
    out = run_engine("serve", "--graph", str(tiny_run.run.path), "--host", host, timeout=120)
    assert out.returncode == 2
    assert "a token is required" in out.stderr and "RETRAIN_STUDIO_TOKEN" in out.stderr
    assert "Serving" not in out.stdout


def test_a_run_without_its_tflite_model_is_refused_rather_than_loading_tensorflow(
    tiny_run, tmp_path
) -> None:
    copy = shutil.copytree(tiny_run.run.path, tmp_path / "run", ignore=shutil.ignore_patterns("export"))
    out = run_engine("serve", "--graph", str(copy), timeout=120)
    assert out.returncode == 2
    assert "LiteRT only" in out.stderr and "python -m engine export" in out.stderr


def test_ctrl_c_stops_the_server_cleanly(tiny_run, tmp_path) -> None:
    server = serving.start(tiny_run.run.path, log=tmp_path / "serve.log")
    assert any(line.startswith("Serving ") for line in server.output().splitlines())
    assert f"http://127.0.0.1:{server.port}" in server.output()
    assert serving.stop(server) == 0
    assert "Stopped serving." in server.output()
    assert "Traceback" not in server.output()


def test_the_server_never_imports_tensorflow(tiny_run, photos) -> None:
    from engine.core.ports import free_port

    port = free_port(serving.HOST)
    script = textwrap.dedent(
        f"""
        import sys, threading, time
        from engine.cli import main
        from tests.support.serving import call
        args = ["serve", "--graph", {str(tiny_run.run.path)!r}, "--port", "{port}"]
        threading.Thread(target=main, args=(args,), daemon=True).start()
        deadline = time.monotonic() + 120
        while True:
            try:
                if call({port}, "GET", "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no /health"
            time.sleep(0.1)
        status, answer = call({port}, "POST", "/predict", open({str(tiny_run.data_dir / "red" / "red_000.jpg")!r}, "rb").read(), content_type="image/jpeg")
        print(status, answer["images"][0]["label"], "tensorflow" in sys.modules, "keras" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    status, label, tensorflow, keras = out.stdout.split()[-4:]
    assert (status, tensorflow, keras) == ("200", "False", "False")
    assert label in tiny_run.run.read_labels()


class _Broken:
    """A service whose model fails unexpectedly (a bug, not the user's input)."""

    labels: ClassVar[list[str]] = ["a", "b"]
    runtime = "litert"
    info: ClassVar[dict[str, list[str]]] = {"labels": labels}

    def predict(self, data: bytes, top_k: int = 5):
        raise RuntimeError("/srv/secret/path/model.tflite: interpreter exploded")


def test_an_unexpected_failure_is_a_generic_500_and_the_details_go_to_stderr(capfd) -> None:
    import uvicorn

    from engine.core.ports import free_port
    from engine.serve.server import build_app

    port = free_port(serving.HOST)
    # log_config=None: uvicorn must not point logging at the capture pytest swaps out after the test
    config = uvicorn.Config(build_app(_Broken()), host=serving.HOST, port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30, what="the in-thread server")
        status, answer = serving.call(port, "POST", "/predict", b"anything", content_type="image/jpeg")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert status == 500
    assert "logged the details" in answer["error"]
    assert "secret" not in str(answer) and "Traceback" not in str(answer)
    assert "interpreter exploded" in capfd.readouterr().err
