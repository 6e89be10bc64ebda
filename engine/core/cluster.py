"""A Ray cluster to run batch work on: connecting, describing it, and a Ray Data map over files.

Imported only when `--ray` (or `RETRAIN_STUDIO_RAY_ADDRESS`) asks for a
cluster; `import ray` itself happens inside the functions, because it costs
about a second and the default path never needs it.

`--ray local` starts an embedded Ray in this process (listening on 127.0.0.1
only); `--ray HOST:PORT` joins a running cluster (`ray start --head`). Token
authentication is on in current Ray releases: a driver without the cluster's
token is refused, so the token must reach this process as `RAY_AUTH_TOKEN`,
`RAY_AUTH_TOKEN_PATH`, or `~/.ray/auth_token`.

The Ray Data pipeline both distributed users share is in `engine.core.raydata`.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

from engine.core.errors import StudioError

ADDRESS_ENV = "RETRAIN_STUDIO_RAY_ADDRESS"
LOCAL = "local"
CONNECT_TIMEOUT_S = 45.0
# The embedded Ray's shared-memory object store: batches are small, keep it modest.
_LOCAL_OBJECT_STORE = 512 * 1024 * 1024
_TOKEN_HELP = (
    "give this process the cluster's token: export RAY_AUTH_TOKEN=<token> (from "
    "`ray get-auth-token` on the head), or RAY_AUTH_TOKEN_PATH=<file>, or copy it to ~/.ray/auth_token"
)


@dataclass(frozen=True)
class NodeInfo:
    """One node of the cluster.

    Attributes:
        node_id: Ray's node id (hex).
        address: the node's IP address.
        cpus: logical CPUs.
        gpus: GPUs.
        alive: whether the node is up.
    """

    node_id: str
    address: str
    cpus: float
    gpus: float
    alive: bool = True


@dataclass(frozen=True)
class ClusterInfo:
    """What a Ray cluster offers.

    Attributes:
        address: the address connected to ("local" for the embedded Ray).
        nodes: the nodes, alive first.
    """

    address: str
    nodes: list[NodeInfo] = field(default_factory=list)

    @property
    def alive(self) -> list[NodeInfo]:
        """The nodes that are up."""
        return [node for node in self.nodes if node.alive]

    @property
    def cpus(self) -> float:
        """Logical CPUs on the live nodes."""
        return sum(node.cpus for node in self.alive)

    @property
    def gpus(self) -> float:
        """GPUs on the live nodes."""
        return sum(node.gpus for node in self.alive)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the address, totals and one entry per node."""
        return {
            "address": self.address,
            "cpus": self.cpus,
            "gpus": self.gpus,
            "nodes": [node.__dict__ for node in self.nodes],
        }

    def summary(self) -> str:
        """One line: nodes, CPUs and GPUs."""
        return (
            f"Ray cluster at {self.address}: {len(self.alive)} node(s), "
            f"{self.cpus:g} CPU(s), {self.gpus:g} GPU(s)"
        )


def resolve_address(flag: str | None) -> str | None:
    """The cluster to use: the flag, else `RETRAIN_STUDIO_RAY_ADDRESS`, else None (in-process).

    Args:
        flag: `--ray`'s value, or None.

    Returns:
        "local", "HOST:PORT", or None.

    Raises:
        StudioError: an address that is neither "local" nor HOST:PORT.
    """
    value = (flag or os.environ.get(ADDRESS_ENV) or "").strip()
    if not value:
        return None
    check_address(value)
    return value


def check_address(value: str) -> str:
    """Check an address: "local" or HOST:PORT.

    Returns:
        The address.

    Raises:
        StudioError: anything else.
    """
    if value == LOCAL:
        return value
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StudioError(
            f"--ray={value!r} is not allowed; give `local` (an embedded Ray) or the head's HOST:PORT "
            "(as `ray start --head` printed it, e.g. 10.0.0.5:6379)"
        )
    return value


def _reachable(address: str, timeout: float) -> None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except OSError as exc:
        raise StudioError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); check that "
            "`ray start --head` runs there and the address and port are right"
        ) from exc


def connect(address: str, *, timeout: float = CONNECT_TIMEOUT_S) -> ClusterInfo:
    """Join the Ray cluster at `address` (or start the embedded one) once per process.

    Args:
        address: "local" or HOST:PORT.
        timeout: seconds to wait for the cluster to accept this driver. Defaults to 45.

    Returns:
        The cluster's `ClusterInfo`.

    Raises:
        StudioError: nothing answers at the address, the token is missing or not the
            cluster's, or the cluster did not accept this driver in time.
    """
    import ray

    check_address(address)
    if ray.is_initialized():
        return describe(address)
    if address == LOCAL:
        # In this thread: the processes it starts die with the thread that started them.
        ray.init(
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=_LOCAL_OBJECT_STORE,
            log_to_driver=False,
        )
        return describe(address)
    _reachable(address, min(timeout, 10.0))
    outcome: dict[str, BaseException | None] = {}

    def init() -> None:
        try:
            ray.init(address=address, log_to_driver=False)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    # ray.init retries a refused driver (a wrong token) for minutes: wait with a deadline
    # (joining starts no process, so a thread of its own is safe).
    worker = threading.Thread(target=init, name="ray-connect", daemon=True)
    worker.start()
    worker.join(timeout)
    if "error" not in outcome:
        raise StudioError(
            f"the Ray cluster at {address} did not accept this driver within {timeout:g} s: the token "
            f"is probably not the cluster's; {_TOKEN_HELP}"
        )
    error = outcome["error"]
    if error is not None:
        if type(error).__name__ == "AuthenticationError":
            raise StudioError(f"the Ray cluster at {address} needs its token; {_TOKEN_HELP}") from error
        raise StudioError(f"could not join the Ray cluster at {address}: {error}") from error
    return describe(address)


def describe(address: str) -> ClusterInfo:
    """The connected cluster's nodes, CPUs and GPUs (call after `connect`)."""
    import ray

    nodes = [
        NodeInfo(
            node_id=str(node.get("NodeID", "")),
            address=str(node.get("NodeManagerAddress", "")),
            cpus=float(node.get("Resources", {}).get("CPU", 0.0)),
            gpus=float(node.get("Resources", {}).get("GPU", 0.0)),
            alive=bool(node.get("Alive", False)),
        )
        for node in ray.nodes()
    ]
    nodes.sort(key=lambda n: (not n.alive, n.node_id))
    return ClusterInfo(address=address, nodes=nodes)


def disconnect() -> None:
    """Leave the cluster: the work this driver started there is cancelled (an embedded Ray stops)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def cluster_error(exc: BaseException, address: str) -> StudioError:
    """A clear error for a cluster that failed mid-run (a node or the head went away)."""
    return StudioError(
        f"the Ray cluster at {address} failed during the run ({type(exc).__name__}: "
        f"{' '.join(str(exc).split())[:300]}); the features computed so far are cached, "
        "so start the run again when the cluster is back (or without --ray)"
    )


class HeadWatch:
    """Watches the head of a remote cluster while the driver waits on it.

    Ray's driver waits a minute for a head that went away, then ends the whole
    process. While this watch is active (a `with` block in the main thread), a
    head that stops answering for `grace` seconds interrupts the main thread,
    and `lost` says why, so the caller raises a clear error and the run can
    still write its logs and status.

    Args:
        address: "local" (nothing to watch) or HOST:PORT.
        interval: seconds between checks. Defaults to 1.
        grace: seconds without an answer before the head counts as gone. Defaults to 5.
    """

    def __init__(self, address: str, *, interval: float = 1.0, grace: float = 5.0) -> None:
        self.address = address
        self.interval = interval
        self.grace = grace
        self.lost: str | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        if self.address != LOCAL and threading.current_thread() is threading.main_thread():
            self._thread = threading.Thread(target=self._watch, name="ray-head-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        silent_since: float | None = None
        while not self._done.wait(self.interval):
            try:
                _reachable(self.address, self.interval)
                silent_since = None
            except StudioError as exc:
                now = time.monotonic()
                silent_since = silent_since if silent_since is not None else now
                if now - silent_since >= self.grace and not self._done.is_set():
                    self.lost = str(exc)
                    # A real SIGINT, not interrupt_main(): it also wakes a main thread blocked in a wait.
                    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                    return
