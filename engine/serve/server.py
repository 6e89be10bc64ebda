"""The model as a local HTTP service: `python -m engine serve`, on Starlette and uvicorn.

`ModelService` loads a run's LiteRT model (or an `.onnx` on onnxruntime) once,
as a small pool of interpreters: a LiteRT interpreter is not thread-safe, so
each request borrows one for its photos and gives it back
(`INTERPRETERS_DEFAULT`, measured in BENCHMARKS.md "Serving"). TensorFlow is
never imported: a model that needs it is refused before the server starts.

`build_app` makes the Starlette application:

- `POST /predict`: photos as multipart/form-data (any number of file fields)
  or one photo as the raw body (`image/*` or `application/octet-stream`);
  `?top_k=N`. JSON: `images` (per photo `name, label, probability, top_k,
  unknown, unknown_score, seconds`), `count`, `seconds`.
- `GET /health`: `ok` and `model_loaded`. `GET /model`: labels, backbone,
  input size, run id, test accuracy, runtime.

Limits are Predict's (`engine.core.limits`): a photo up to `PREDICT_PHOTO_MB`,
at most `MAX_PREDICT_PHOTOS` per request, each photo's header checked against
`engine.data.images.MAX_PIXELS` before decoding. A body over its limit is a
413 as soon as its `Content-Length` says so (nothing read) or as soon as the
bytes received pass it. Every answer is JSON; an error's message says what is
wrong and what to do, never a traceback nor a path on the server (the
details of an unexpected failure go to stderr).

With a token, every request must carry `Authorization: Bearer <token>`
(compared in constant time); `serve` refuses to listen off loopback without one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.core.errors import ImageError, StudioError
from engine.core.limits import MAX_PREDICT_PHOTOS
from engine.core.rundir import RunDir
from engine.serve.server_guard import (
    CLOSE,
    MAX_PHOTO_BYTES,
    RequestError,
    RequestGuard,
    too_large,
)

if (
    TYPE_CHECKING
):  # the model's modules load numpy and PIL: imported when a model is, so --help stays fast
    from engine.serve.inference import Prediction, Predictor

DEFAULT_PORT = 8000
DEFAULT_TOP_K = 5
# A pool, not one interpreter behind a lock: two requests can run on the two cores. On the
# 2-core test machine with the 128 px tiny run the two were within noise (BENCHMARKS.md
# "Serving": HTTP and decoding dominate there); `--interpreters 1` gives the lock.
INTERPRETERS_DEFAULT = 2
RAW_TYPES = ("image/", "application/octet-stream")


def _serving_model(graph: Path) -> tuple[Path, str]:
    """The model file `serve` runs for `graph` and its kind, without TensorFlow."""
    from engine.serve.model_info import model_kind

    if graph.is_dir() and RunDir(graph).has_model():
        run = RunDir(graph)
        if not run.tflite_path.is_file():
            raise StudioError(
                f"run {run.run_id} has no export/model.tflite, and serve runs LiteRT only (no "
                f"TensorFlow); make it with `python -m engine export --run_dir {graph}`"
            )
        return run.tflite_path, "tflite"
    kind = model_kind(graph)
    if kind not in ("tflite", "onnx"):
        raise StudioError(
            f"{str(graph)!r} is a {kind} model, and serve runs .tflite (LiteRT) or .onnx "
            "(onnxruntime) models only, without TensorFlow; give the run folder or its "
            "export/model.tflite"
        )
    return graph, kind


class ModelService:
    """A model loaded once, as a pool of interpreters that threads borrow one at a time.

    Args:
        graph: a run folder, or a `.tflite` or `.onnx` model file.
        labels: a labels file for a model that carries none. Defaults to None.
        interpreters: how many interpreters to keep. Defaults to `INTERPRETERS_DEFAULT`.
        threads: threads per LiteRT interpreter. Defaults to the CPU count shared
            among the interpreters (at least 1).

    Raises:
        StudioError: missing files, or a model that would need TensorFlow.
        ValueError: `interpreters` below 1.
    """

    def __init__(
        self,
        graph: str | os.PathLike[str],
        *,
        labels: str | os.PathLike[str] | None = None,
        interpreters: int = INTERPRETERS_DEFAULT,
        threads: int | None = None,
    ) -> None:
        if interpreters < 1:
            raise ValueError(f"interpreters={interpreters!r} is not allowed; use 1 or more")
        from engine.serve.inference import Predictor

        self.graph = Path(graph)
        model_path, kind = _serving_model(self.graph)
        self.kind = kind
        self.threads = threads or max(1, (os.cpu_count() or 1) // interpreters)
        is_run = self.graph.is_dir()
        first = (
            Predictor.from_run(self.graph)
            if is_run and labels is None
            else Predictor.from_files(model_path, labels)
        )
        self._pool: queue.Queue[Predictor] = queue.Queue()
        for _ in range(interpreters):
            self._pool.put(dataclasses.replace(first, model=self._load(model_path), warm=False))
        self.labels = list(first.labels)
        self.runtime = first.runtime
        self.interpreters = interpreters
        self.info = self._describe(first, model_path)

    def _load(self, path: Path) -> Any:
        from engine.serve.model_files import LiteModel, OnnxModel

        if self.kind == "tflite":
            return LiteModel(path, num_threads=self.threads)

        return OnnxModel(path, num_threads=self.threads)

    def _describe(self, predictor: Predictor, model_path: Path) -> dict[str, Any]:
        """What `GET /model` answers: the run's config and report for a run, else the file's metadata."""
        from engine.serve.model_info import read_info

        info = read_info(model_path) or {}
        facts: dict[str, Any] = {
            "labels": self.labels,
            "backbone": info.get("architecture"),
            "input_size": predictor.input_size,
            "crop_fraction": predictor.crop_fraction,
            "resample": predictor.resample,
            "run_id": info.get("run_id"),
            "test_accuracy": None,
            "runtime": self.runtime,
            "model_file": model_path.name,
            "interpreters": self.interpreters,
        }
        if self.graph.is_dir():
            run = RunDir(self.graph)
            config = run.read_config()
            facts["run_id"] = config.get("run_id") or run.run_id
            facts["backbone"] = config.get("architecture") or config.get("backbone") or facts["backbone"]
            facts["model_file"] = f"export/{model_path.name}"
            with contextlib.suppress(StudioError):
                accuracy = run.read_report().get("test_accuracy")
                facts["test_accuracy"] = None if accuracy is None else float(accuracy)
        return facts

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Predictor]:
        """One interpreter's predictor, for this thread alone until the block ends."""
        predictor = self._pool.get()
        try:
            yield predictor
        finally:
            self._pool.put(predictor)

    def predict(self, data: bytes, top_k: int = DEFAULT_TOP_K) -> Prediction:
        """Predict one photo's bytes on a borrowed interpreter (blocks while all are busy).

        Args:
            data: the photo's bytes.
            top_k: labels to return. Defaults to 5.

        Returns:
            The `Prediction`.

        Raises:
            ImageError: the bytes are not a usable image.
        """
        with self.borrow() as predictor:
            return predictor.predict(data, top_k=top_k)


def prediction_json(name: str, prediction: Prediction) -> dict[str, Any]:
    """One photo's answer as JSON.

    Args:
        name: the photo's name (its form file name, or "body").
        prediction: its prediction.

    Returns:
        `name, label, probability, top_k ([{label, probability}]), unknown, unknown_score, seconds`.
    """
    score = prediction.unknown_score
    return {
        "name": name,
        "label": prediction.label,
        "probability": round(float(prediction.probability), 6),
        "top_k": [{"label": label, "probability": round(float(p), 6)} for label, p in prediction.top_k],
        "unknown": bool(prediction.unknown),
        "unknown_score": None if score is None else float(score),
        "seconds": round(prediction.seconds, 6),
    }


def _top_k(raw: str | None, labels: int) -> int:
    if raw is None or raw == "":
        return min(DEFAULT_TOP_K, labels)
    if not raw.strip().isdigit() or int(raw) < 1:
        raise RequestError(
            400, f"top_k={raw[:20]!r} is not allowed; give a whole number from 1 to {labels}"
        )
    return min(int(raw), labels)


async def _photos(request: Any) -> list[tuple[str, bytes]]:
    """The request's photos as `(name, bytes)`: every multipart file field, or the raw body."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=MAX_PREDICT_PHOTOS, max_fields=MAX_PREDICT_PHOTOS)
        except HTTPException as exc:
            raise RequestError(
                413 if "Too many files" in str(exc.detail) else 400,
                f"the multipart body cannot be used ({exc.detail}); send at most "
                f"{MAX_PREDICT_PHOTOS} photos, each as a file field",
            ) from None
        photos = []
        try:
            for index, (field, value) in enumerate(form.multi_items()):
                if not isinstance(value, UploadFile):
                    continue
                name = Path(value.filename or field or f"photo-{index + 1}").name
                if value.size is not None and value.size > MAX_PHOTO_BYTES:
                    raise RequestError(413, f"{name}: {too_large(value.size, False)}")
                photos.append((name, await value.read()))
        finally:
            await form.close()
        if not photos:
            raise RequestError(
                400, "the multipart body holds no file; send each photo as a file field "
                "(curl -F 'file=@photo.jpg')"
            )  # fmt: skip
        return photos
    if not content_type.startswith(RAW_TYPES):
        raise RequestError(
            415,
            f"Content-Type {content_type[:60] or '(none)'!r} is not a photo; send "
            "multipart/form-data with file fields, or the photo's bytes as image/* or "
            "application/octet-stream",
        )
    body = await request.body()
    if not body:
        raise RequestError(400, "the request body is empty; send a photo's bytes")
    return [(Path(request.query_params.get("name") or "body").name, body)]


def build_app(service: ModelService, *, token: str | None = None) -> Any:
    """The Starlette application serving `service`.

    Args:
        service: the loaded model.
        token: the token every request must carry. Defaults to None (no token).

    Returns:
        The ASGI application (token and size guard outside, then the routes).
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Any) -> Any:
        return JSONResponse({"ok": True, "model_loaded": True, "runtime": service.runtime})

    async def model(request: Any) -> Any:
        return JSONResponse(service.info)

    async def predict(request: Any) -> Any:
        start = time.perf_counter()
        top_k = _top_k(request.query_params.get("top_k"), len(service.labels))
        photos = await _photos(request)
        images, failed = [], []
        for name, data in photos:
            try:
                prediction = await run_in_threadpool(service.predict, data, top_k)
            except ImageError as exc:
                failed.append(name)
                images.append({"name": name, "error": f"not a usable image ({exc.reason})"})
                continue
            images.append(prediction_json(name, prediction))
        body: dict[str, Any] = {
            "images": images,
            "count": len(images),
            "seconds": round(time.perf_counter() - start, 6),
        }
        if not failed:
            return JSONResponse(body)
        body["error"] = (
            f"{len(failed)} of {len(images)} photo(s) could not be used ({', '.join(failed[:5])}): "
            "send JPEG, PNG, GIF, BMP or WebP photos (each entry says what is wrong with it)"
        )
        return JSONResponse(body, status_code=422)

    async def request_error(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, RequestError)
        headers = CLOSE if exc.status == 413 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    async def http_error(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, HTTPException)
        routes = "POST /predict, GET /health, GET /model"
        return JSONResponse(
            {
                "error": f"{exc.detail}: {request.method} {request.url.path[:80]}; this server answers {routes}"
            },
            status_code=exc.status_code,
        )

    async def server_error(request: Any, exc: Exception) -> Any:
        # Starlette raises the exception again after this answer: uvicorn logs its traceback.
        print(f"error: {request.method} {request.url.path[:80]} failed: {exc!r}", file=sys.stderr)
        return JSONResponse(
            {"error": "the server failed on this request; it has logged the details. Try again, "
             "and if it keeps failing, look at the server's output"},
            status_code=500,
        )  # fmt: skip

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/model", model, methods=["GET"]),
        ],
        middleware=[Middleware(RequestGuard, token=token)],
        exception_handlers={
            RequestError: request_error,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
