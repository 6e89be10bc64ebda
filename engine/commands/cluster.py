"""`python -m engine cluster`: what a Ray cluster offers the studio, or why it cannot be used.

Connects as a driver (token authentication as for `--ray`), prints the nodes
with their CPUs and GPUs, and leaves. The dashboard's Train page runs it in a
subprocess with a deadline, so a cluster that does not answer never blocks
the page.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.commands.table import format_table

CLUSTER_TIMEOUT_S = 30.0


def register(subparsers: Any) -> None:
    """Add the `cluster` command.

    Args:
        subparsers: the object returned by `ArgumentParser.add_subparsers`.
    """
    parser = subparsers.add_parser(
        "cluster",
        help="show a Ray cluster's nodes, CPUs and GPUs (for --ray)",
        description="Connect to the Ray cluster that --ray would use and list its nodes.",
    )
    parser.add_argument(
        "--ray",
        help="`local` or the head's HOST:PORT (default: $RETRAIN_STUDIO_RAY_ADDRESS)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--timeout", type=float, default=CLUSTER_TIMEOUT_S,
        help=f"seconds to wait for the cluster (default {CLUSTER_TIMEOUT_S:g})",
    )  # fmt: skip
    parser.set_defaults(func=run_cluster)


def run_cluster(args: argparse.Namespace) -> int:
    """Print the cluster's nodes; a `StudioError` says why it cannot be reached.

    Returns:
        0.

    Raises:
        StudioError: no address, a bad one, or a cluster that refuses or does not answer.
    """
    from engine.core import cluster
    from engine.core.errors import StudioError

    address = cluster.resolve_address(args.ray)
    if address is None:
        raise StudioError(
            f"no cluster given; pass --ray HOST:PORT (or `local`) or set {cluster.ADDRESS_ENV}"
        )
    info = cluster.connect(address, timeout=args.timeout)
    if args.json:
        print(json.dumps(info.as_dict()))
    else:
        print(info.summary())
        rows = [["node", "address", "CPUs", "GPUs", "state"]] + [
            [n.node_id[:12], n.address, f"{n.cpus:g}", f"{n.gpus:g}", "alive" if n.alive else "dead"]
            for n in info.nodes
        ]
        print(format_table(rows, right_align_from=2, rule=True))
    sys.stdout.flush()
    cluster.disconnect()
    return 0
