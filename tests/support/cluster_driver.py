"""A studio driver for the Ray cluster tests: extract a folder's bottlenecks on `--ray`, print JSON.

Run inside the cluster's namespace (`LocalRayCluster.popen`). Prints one line
`{"computed": ..., "cached": ..., "skipped": ..., "nodes": {...}}`, or
`{"error": "..."}` with exit code 2 when the studio raised a `StudioError`.
`--stop_after N` sets the cancel flag once N images have been computed.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--ray", required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--stop_after", type=int, default=0)
    args = parser.parse_args()

    from engine.core.errors import StudioError
    from engine.data.scan import scan_dataset
    from engine.models.loading import load_feature_runtime
    from engine.train.bottlenecks import extract_bottlenecks
    from engine.train.cache import BottleneckCache

    records = list(scan_dataset(args.images, use_cache=False).images)
    runtime = load_feature_runtime("efficientnet_lite0", input_size=args.size)
    cache = BottleneckCache.for_runtime(runtime, args.cache)
    seen = {"computed": 0}

    def progress(p) -> None:
        seen["computed"] = int(p.detail.get("computed", 0))
        print(json.dumps({"progress": seen["computed"]}), flush=True)

    def should_stop() -> bool:
        return bool(args.stop_after) and seen["computed"] >= args.stop_after

    try:
        result = extract_bottlenecks(
            records, runtime, cache=cache, progress=progress, should_stop=should_stop,
            ray_address=args.ray,
        )  # fmt: skip
    except StudioError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 2
    out = {"computed": result.computed, "cached": result.cached, "skipped": len(result.skipped),
           "nodes": result.nodes}  # fmt: skip
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
