"""The suite's xdist scheduling (tests/support/scheduling.py), run for real on a small project:
a browser module goes whole to one worker in file order; other tests are shared one at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import REPO_ROOT
from tests.support.scheduling import kept_on_one_worker

RECORD = """
import json, os
def record(name):
    with open(os.environ["WHERE_FILE"], "a") as out:
        out.write(json.dumps([name, os.environ["PYTEST_XDIST_WORKER"]]) + "\\n")
"""


def test_the_kept_modules_are_the_browser_tests_and_the_ray_cluster_module() -> None:
    assert kept_on_one_worker("tests/e2e/test_e2e_dashboard.py::test_runs_page_lists_the_run")
    assert kept_on_one_worker("tests/faults/test_ray_cluster.py::test_a_killed_worker_is_retried")
    assert not kept_on_one_worker("tests/faults/test_ray_gpu.py::test_gpu")
    assert not kept_on_one_worker("tests/unit/test_e2e_like.py::test_x")


def test_a_kept_module_runs_whole_on_one_worker_in_order_and_the_rest_is_shared(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tests" / "e2e").mkdir(parents=True)
    (project / "tests" / "unit").mkdir()
    (project / "record.py").write_text(RECORD)
    flow = "from record import record\n" + "".join(
        f"def test_step_{k}():\n    record('flow-{k}')\n" for k in range(6)
    )
    (project / "tests" / "e2e" / "test_flow.py").write_text(flow)
    units = "from record import record\n" + "".join(
        f"def test_unit_{k}():\n    record('unit-{k}')\n" for k in range(12)
    )
    (project / "tests" / "unit" / "test_units.py").write_text(units)
    (project / "conftest.py").write_text(
        "import sys\nsys.path.insert(0, __import__('os').path.dirname(__file__))\n"
        "from tests_support_scheduling import pytest_xdist_make_scheduler  # noqa: F401\n"
    )
    (project / "tests_support_scheduling.py").write_text(
        (REPO_ROOT / "tests" / "support" / "scheduling.py").read_text()
    )
    where = tmp_path / "where.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not this run's
    env["WHERE_FILE"] = str(where)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-v", "tests"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "scheduling tests via ModulesKeptWhole" in done.stdout
    rows = [json.loads(line) for line in where.read_text().splitlines()]
    flow_rows = [(name, worker) for name, worker in rows if name.startswith("flow-")]
    assert [name for name, _ in flow_rows] == [f"flow-{k}" for k in range(6)]  # in file order
    assert len({worker for _, worker in flow_rows}) == 1  # on one worker
    assert len({worker for name, worker in rows if name.startswith("unit-")}) == 2
