"""How the suite's tests are shared between the xdist workers (tests/conftest.py holds the hook)."""

from __future__ import annotations

import pytest

# Modules whose tests share one costly module-scoped resource and follow one another as a user
# would (the dashboard module trains the run its later tests predict with): each goes whole to
# one xdist worker, in file order. Split across the two workers, the later tests would meet a
# second server with no run, and two Ray clusters would share two cores. (xdist's own
# `--dist loadgroup` renames test ids, which pytest 9 no longer allows: its groups are ignored.)
ONE_WORKER_PER_MODULE = ("tests/e2e/", "tests/faults/test_ray_cluster.py")


def kept_on_one_worker(nodeid: str) -> bool:
    """Whether the test `nodeid` belongs to a module that runs whole on one worker."""
    path = nodeid.split("::", 1)[0]
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in ONE_WORKER_PER_MODULE)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """xdist's `load` scheduling, one test at a time, except that each module of
    `ONE_WORKER_PER_MODULE` is one unit of work (another `--dist` is left as asked)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesKeptWhole(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid.split("::", 1)[0] if kept_on_one_worker(nodeid) else nodeid

    return ModulesKeptWhole(config, log)
