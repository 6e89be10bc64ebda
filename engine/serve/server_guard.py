"""The HTTP service's gate: who may call it, and how much a request may send.

`check_exposure` refuses to listen beyond this machine without a token;
`RequestGuard` (ASGI middleware) checks the token in constant time, then the
body's size against Predict's limits (`engine.core.limits`) before any route
reads a byte. A `RequestError` is a request the client can fix, with its status.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from engine.core.errors import StudioError
from engine.core.limits import MAX_PREDICT_PHOTOS, PREDICT_PHOTO_MB
from engine.core.ports import is_loopback

DEFAULT_HOST = "127.0.0.1"
TOKEN_ENV = "RETRAIN_STUDIO_TOKEN"
MIB = 1024**2
MAX_PHOTO_BYTES = PREDICT_PHOTO_MB * MIB
# A multipart body holds up to MAX_PREDICT_PHOTOS photos, plus its part headers.
MAX_MULTIPART_BYTES = MAX_PREDICT_PHOTOS * MAX_PHOTO_BYTES + MIB
# After a 413 the connection is closed: uvicorn would otherwise read the rest of the body
# (and throw it away) to keep the connection alive for a next request.
CLOSE = {"Connection": "close"}

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Any], Awaitable[None]]


class RequestError(StudioError):
    """A request the client can fix: its HTTP status and a message saying what to do.

    Args:
        status: the HTTP status code (4xx).
        message: what is wrong and what to do.
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token.

    Args:
        host: the address to listen on.
        token: the token every request must carry, or None.

    Raises:
        StudioError: `host` is not a loopback address and there is no token.
    """
    if token or is_loopback(host):
        return
    raise StudioError(
        f"--host {host} lets other machines call the model, so a token is required: set "
        f"{TOKEN_ENV} (or pass --token) and send `Authorization: Bearer <token>` with every "
        f"request, or leave --host at {DEFAULT_HOST}"
    )


def _bearer(headers: list[tuple[bytes, bytes]]) -> bytes:
    for key, value in headers:
        if key.lower() == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
    return b""


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


class RequestGuard:
    """ASGI middleware: the token, then the body's size limit, before any route reads a byte."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        headers = scope.get("headers", [])
        if self.token is not None and not hmac.compare_digest(_bearer(headers), self.token):
            response = JSONResponse(
                {"error": "missing or wrong token: send the header `Authorization: Bearer <token>` "
                 "with the token the server was started with"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        multipart = _header(headers, b"content-type").lower().startswith("multipart/")
        limit = MAX_MULTIPART_BYTES if multipart else MAX_PHOTO_BYTES
        length = _header(headers, b"content-length")
        if length.isdigit() and int(length) > limit:
            response = JSONResponse(
                {"error": too_large(int(length), multipart)}, status_code=413, headers=CLOSE
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestError(413, too_large(received, multipart, so_far=True))
            return message

        await self.app(scope, limited, send)


def too_large(size: int, multipart: bool, *, so_far: bool = False) -> str:
    """What a 413 says: the size received and the limit, for a photo or a multipart body."""
    got = f"{'more than ' if so_far else ''}{size / MIB:.1f} MB"
    if multipart:
        return (
            f"the request body is {got}, over the {MAX_MULTIPART_BYTES / MIB:.0f} MB limit "
            f"({MAX_PREDICT_PHOTOS} photos of up to {PREDICT_PHOTO_MB} MB); send fewer or smaller photos"
        )
    return (
        f"the photo is {got}, over the {PREDICT_PHOTO_MB} MB limit for a photo; make it smaller "
        "(a photo need not be larger than a few MB)"
    )
