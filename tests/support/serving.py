"""A real `python -m engine serve` process on 127.0.0.1, and a standard-library client for it.

`serving(graph, ...)` starts the CLI in a subprocess on a free port, waits for
`GET /health` to answer (polled against a deadline), yields a `Server`, and
stops it with SIGINT (Ctrl-C) at the end. `call` makes one request with
http.client and returns the status and the JSON; `multipart` encodes photos
as file fields. tests/unit/serve/test_http.py and bench/bench_serve.py use them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import REPO_ROOT

HOST = "127.0.0.1"


@dataclass
class Server:
    """A running server process.

    Attributes:
        process: the `python -m engine serve` process (stdout and stderr to files).
        port: its port on 127.0.0.1.
        token: the token it requires, or None.
        log: the file holding its stdout and stderr.
    """

    process: subprocess.Popen[bytes]
    port: int
    token: str | None
    log: Path

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://{HOST}:{self.port}"

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def call(self, method: str, path: str, body: bytes | None = None, **kwargs: Any) -> tuple[int, Any]:
        """`call` against this server, with its token unless `token=` says otherwise."""
        kwargs.setdefault("token", self.token)
        return call(self.port, method, path, body, **kwargs)


def multipart(files: Sequence[tuple[str, bytes]], field: str = "file") -> tuple[bytes, str]:
    """Photos as multipart/form-data file fields.

    Args:
        files: `(file name, bytes)` pairs.
        field: the form field's name for each. Defaults to "file".

    Returns:
        `(body, content type)`.
    """
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    content_type: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, Any]:
    """One request; the status and the decoded JSON answer (or the raw text if it is not JSON).

    Args:
        port: the server's port on 127.0.0.1.
        method: "GET" or "POST".
        path: the path and query.
        body: the request body. Defaults to None.
        content_type: its Content-Type. Defaults to None.
        token: sent as `Authorization: Bearer <token>`. Defaults to None.
        headers: more headers. Defaults to None.
        timeout: seconds for the socket. Defaults to 60.
        connection: a connection to reuse (kept open). Defaults to None (a new one, closed after).
    """
    sent = dict(headers or {})
    if content_type:
        sent["Content-Type"] = content_type
    if token:
        sent["Authorization"] = f"Bearer {token}"
    conn = connection or http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        raw = response.read()
    finally:
        if connection is None:
            conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


def _healthy(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.output()}")
    try:
        status, _ = server.call("GET", "/health", timeout=2)
    except OSError:
        return False
    return status == 200


def start(
    graph: str | os.PathLike[str],
    *args: str,
    log: Path,
    token: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Server:
    """Start `python -m engine serve --graph GRAPH` on a free port and wait until /health answers.

    Args:
        graph: the run folder or model file.
        args: more `serve` flags.
        log: a file for its stdout and stderr.
        token: passed in `RETRAIN_STUDIO_TOKEN`. Defaults to None.
        env: the environment. Defaults to this process's.
        timeout: seconds to wait for /health. Defaults to 120.

    Returns:
        The running server.
    """
    from engine.core.ports import free_port

    port = free_port(HOST)
    environment = dict(env if env is not None else os.environ)
    environment.pop("RETRAIN_STUDIO_TOKEN", None)
    if token:
        environment["RETRAIN_STUDIO_TOKEN"] = token
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", "--graph", str(graph), "--port", str(port), *args],
            cwd=REPO_ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, token, log)
    deadline = time.monotonic() + timeout
    while not _healthy(server):
        if time.monotonic() > deadline:
            stop(server)
            raise AssertionError(f"no answer from /health within {timeout}s:\n{server.output()}")
        time.sleep(0.1)
    return server


def stop(server: Server, timeout: float = 30.0) -> int:
    """Ctrl-C the server and wait for it to exit; its exit code."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@contextlib.contextmanager
def serving(graph: str | os.PathLike[str], *args: str, log: Path, **kwargs: Any) -> Iterator[Server]:
    """`start` a server for the block, `stop` it after."""
    server = start(graph, *args, log=log, **kwargs)
    try:
        yield server
    finally:
        stop(server)
