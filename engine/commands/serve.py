"""`python -m engine serve`: a run's model as a local HTTP service (`engine.serve.server`).

Loads the model once (LiteRT, or onnxruntime for an `.onnx`; never
TensorFlow), binds the socket, prints one line with the URL, and serves
until Ctrl-C. Off loopback it refuses to start without a token.
"""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` command.

    Args:
        subparsers: the top-level parser's sub-parsers.
    """
    from engine.serve.server import DEFAULT_PORT, INTERPRETERS_DEFAULT
    from engine.serve.server_guard import DEFAULT_HOST, TOKEN_ENV

    parser = subparsers.add_parser(
        "serve",
        help="serve a trained model over HTTP (POST /predict)",
        description="Serve a run's model over HTTP on LiteRT (no TensorFlow): POST /predict "
        "(multipart file fields or a raw image body, ?top_k=N) answers JSON; GET /health, "
        "GET /model. Listens on 127.0.0.1 unless --host says otherwise; off loopback a token "
        "is required.",
    )
    parser.add_argument(
        "--graph", required=True,
        help="a run folder (its export/model.tflite), or a .tflite or .onnx model file",
    )  # fmt: skip
    parser.add_argument("--labels", help="labels file, for a model file that carries none")
    parser.add_argument(
        "--host", default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)"
    )
    parser.add_argument(
        "--token",
        help=f"require `Authorization: Bearer TOKEN` on every request (default: ${TOKEN_ENV}; "
        "prefer the variable: a flag is visible to other users in the process list)",
    )
    parser.add_argument(
        "--interpreters", type=int, default=INTERPRETERS_DEFAULT,
        help=f"model interpreters serving requests side by side (default {INTERPRETERS_DEFAULT})",
    )  # fmt: skip
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Run `serve` from parsed arguments: load, bind, print the URL, serve until Ctrl-C.

    Args:
        args: parsed `serve` arguments.

    Returns:
        0 once stopped.

    Raises:
        StudioError: a bad model, an exposed host without a token, a port in use.
    """
    import socket

    from engine.core.errors import StudioError
    from engine.serve.server import ModelService, build_app
    from engine.serve.server_guard import TOKEN_ENV, check_exposure

    token = args.token or os.environ.get(TOKEN_ENV) or None
    check_exposure(args.host, token)
    if not 0 <= args.port <= 65535:
        raise StudioError(f"--port {args.port} is not a port; give 1 to 65535, or 0 for any free port")
    if args.interpreters < 1:
        raise StudioError(f"--interpreters {args.interpreters} is not allowed; use 1 or more")
    service = ModelService(args.graph, labels=args.labels, interpreters=args.interpreters)

    host = args.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every answer on a kept-alive connection waited ~40 ms (Nagle meets delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, args.port))
    except OSError as exc:
        sock.close()
        raise StudioError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pass another "
            "--port (0 picks a free one) or stop what listens there"
        ) from None
    sock.listen(128)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    info = service.info
    print(
        f"Serving {info['run_id'] or service.graph.name} ({len(service.labels)} classes, "
        f"{service.runtime}, {service.interpreters} interpreter(s)) at http://{shown}:{port}",
        flush=True,
    )
    print(
        "POST /predict (multipart file fields or a raw image body, ?top_k=N), GET /health, "
        "GET /model" + ("; every request needs `Authorization: Bearer <token>`" if token else "")
        + "; Ctrl-C stops",
        flush=True,
    )  # fmt: skip
    import uvicorn

    config = uvicorn.Config(
        build_app(service, token=token), log_level="warning", access_log=False, lifespan="off"
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("Stopped serving.", file=sys.stderr, flush=True)
    return 0
