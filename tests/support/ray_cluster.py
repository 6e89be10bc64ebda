"""A real two-node Ray cluster on 127.0.0.1, inside namespaces the test makes, for the cluster tests.

`unshare -n -p -f --mount-proc --kill-child` makes a network namespace with
only loopback (nothing listens on the machine's real interfaces) and a PID
namespace (so `ray stop --force` sees this cluster's processes and no one
else's, and they all die with the namespace). Every command of the test
(`ray start`, the studio's driver) runs in it through `nsenter`.

Token authentication is on: the head, the second node and the drivers get
the same `RAY_AUTH_TOKEN`, made here; a driver without it is refused.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

RAY = str(Path(sys.executable).with_name("ray"))
PORT = 6390


class LocalRayCluster:
    """A head and `nodes - 1` more nodes, `cpus` logical CPUs each, on 127.0.0.1 in a namespace."""

    def __init__(self, *, nodes: int = 2, cpus: int = 1) -> None:
        self.nodes = nodes
        self.cpus = cpus
        self.address = f"127.0.0.1:{PORT}"
        self.token = secrets.token_hex(32)
        # Ray's socket paths must stay short: a folder directly under /tmp.
        self.temp = Path(tempfile.mkdtemp(prefix="rs-ray-", dir="/tmp"))
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        self._holder: subprocess.Popen[bytes] | None = None
        self.ns_pid = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> LocalRayCluster:
        self._holder = subprocess.Popen(
            ["unshare", "-n", "-p", "-f", "--mount-proc", "--kill-child",
             "sh", "-c", "ip link set lo up && exec sleep 100000"],
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.ns_pid:
            children = Path(f"/proc/{self._holder.pid}/task/{self._holder.pid}/children")
            text = children.read_text().split() if children.exists() else []
            if text and Path(f"/proc/{text[0]}/cmdline").read_bytes().startswith(b"sleep"):
                self.ns_pid = int(text[0])
            elif time.monotonic() > deadline:
                raise RuntimeError("the namespace for the Ray cluster did not start")
            else:
                time.sleep(0.05)
        head = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(PORT),
                "--num-cpus", str(self.cpus), "--include-dashboard", "false",
                "--temp-dir", str(self.temp), "--disable-usage-stats"]  # fmt: skip
        self.check(head, timeout=120)
        for _ in range(self.nodes - 1):
            self.check(
                [RAY, "start", "--address", self.address, "--node-ip-address", "127.0.0.1",
                 "--num-cpus", str(self.cpus), "--disable-usage-stats"],
                timeout=120,
            )  # fmt: skip
        return self

    def stop(self) -> None:
        """`ray stop --force` in the namespace, then the namespace itself; its folder goes too."""
        try:
            if self.ns_pid:
                self.run([RAY, "stop", "--force"], timeout=60)
        finally:
            if self._holder is not None:
                self._holder.kill()  # --kill-child: the namespace's init, and with it everything
                self._holder.wait(timeout=30)
            shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ commands inside the namespace

    def command(self, argv: list[str], cwd: str | Path | None = None) -> list[str]:
        """`argv` run inside the cluster's network, PID and mount namespaces, in `cwd`.

        Entering a mount namespace resets the working folder to `/`, so it is set again here.
        """
        return ["nsenter", "-t", str(self.ns_pid), "-n", "-p", "-m", f"--wd={cwd or os.getcwd()}",
                "--", *argv]  # fmt: skip

    def run(
        self, argv: list[str], *, timeout: float = 300, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(argv, kwargs.pop("cwd", None)), env=kwargs.pop("env", self.env), capture_output=True, text=True,
            check=False, timeout=timeout, **kwargs,
        )  # fmt: skip

    def check(self, argv: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess:
        done = self.run(argv, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(argv, kwargs.pop("cwd", None)), env=kwargs.pop("env", self.env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, **kwargs,
        )  # fmt: skip

    def processes(self, needle: str) -> list[int]:
        """Host PIDs of this cluster's processes whose command line contains `needle`."""
        ours = os.readlink(f"/proc/{self.ns_pid}/ns/pid")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "pid") != ours:
                    continue
                if needle.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def kill(self, needle: str) -> list[int]:
        """SIGKILL this cluster's processes matching `needle`; returns their PIDs."""
        pids = self.processes(needle)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids
