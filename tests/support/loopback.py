"""An HTTP server on 127.0.0.1 for the online code paths' tests.

The online paths (Keras weights, flower_photos) are real code; their tests
talk to this server, never to the internet.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def serve_on_loopback(handler: Callable[..., Any]) -> Iterator[str]:
    """Serve `handler` on a free 127.0.0.1 port until the block ends.

    Args:
        handler: a `BaseHTTPRequestHandler` class or a factory (e.g. a partial).

    Yields:
        The base URL, `http://127.0.0.1:<port>`.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
