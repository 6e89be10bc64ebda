"""Serving (issue 20): requests/s and p50/p95 latency of `python -m engine serve` at 1, 4 and 16 clients.

Beside it, `label_image`'s in-process path on the same photos (`Predictor.predict`
in a loop, one thread). Each client is a thread with its own keep-alive
http.client connection posting one photo per request (raw JPEG body); a
request's latency is from sending to the last byte of the answer. The server
runs as a real `python -m engine serve` process on 127.0.0.1, once per
interpreter setting (`--interpreters 1`: one interpreter with every CPU
thread behind the pool's lock; `--interpreters 2`: two of one thread each).

    python bench/bench_serve.py --graph RUN_DIR --photos PHOTO_DIR [--requests 160] [--clients 1,4,16]
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def in_process(graph: str, photos: list[bytes], requests: int) -> dict[str, float]:
    from engine.serve.inference import Predictor

    predictor = Predictor.from_run(graph)
    latencies = []
    start = time.perf_counter()
    for index in range(requests):
        began = time.perf_counter()
        predictor.predict(photos[index % len(photos)], top_k=3)
        latencies.append(time.perf_counter() - began)
    wall = time.perf_counter() - start
    return {
        "rps": requests / wall,
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
    }


def against(port: int, photos: list[bytes], clients: int, requests: int) -> dict[str, float]:
    from tests.support.serving import HOST

    latencies: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)
    errors = []

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        mine = []
        for index in range(per_client):
            body = photos[(offset + index) % len(photos)]
            began = time.perf_counter()
            conn.request("POST", "/predict?top_k=3", body=body, headers={"Content-Type": "image/jpeg"})
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - began)
            if response.status != 200:
                errors.append(response.status)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i * 7,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    assert not errors, errors
    return {
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
    }


def main() -> None:
    from tests.support import serving

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", required=True, help="a run folder with export/model.tflite")
    parser.add_argument("--photos", required=True, help="a folder of JPEG photos (searched recursively)")
    parser.add_argument("--requests", type=int, default=160, help="requests per measurement")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--interpreters", default="1,2", help="server settings to compare")
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted(Path(args.photos).rglob("*.jpg"))]
    assert photos, f"no .jpg under {args.photos}"
    print(f"{len(photos)} photos, {os.cpu_count()} CPUs, {args.requests} requests per row")
    print("| setting | clients | requests/s | p50 ms | p95 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    row = in_process(args.graph, photos, args.requests)
    print(f"| label_image in-process (Predictor.predict loop) | 1 | {row['rps']:.1f} | "
          f"{row['p50'] * 1000:.1f} | {row['p95'] * 1000:.1f} |")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        for interpreters in [int(n) for n in args.interpreters.split(",")]:
            log = Path(tmp) / f"serve-{interpreters}.log"
            with serving.serving(args.graph, "--interpreters", str(interpreters), log=log) as server:
                against(server.port, photos, 4, 16)  # warm the connections and the thread pool
                for clients in [int(n) for n in args.clients.split(",")]:
                    row = against(server.port, photos, clients, args.requests)
                    print(f"| serve --interpreters {interpreters} | {clients} | {row['rps']:.1f} | "
                          f"{row['p50'] * 1000:.1f} | {row['p95'] * 1000:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
