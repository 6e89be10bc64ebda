"""Files and folders the studio writes honour the process umask, atomic writes included."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.cli import REPO_ROOT

# umask is process-wide: each case runs in its own interpreter.
WRITER = textwrap.dedent(
    """
    import json, os, stat, sys
    from pathlib import Path
    os.umask(int(sys.argv[2], 8))
    from engine.core import fsutil
    from engine.core.jsonlines import append_line
    from engine.core.rundir import RunDir
    root = Path(sys.argv[1])
    fsutil.atomic_write_text(root / "a.txt", "x")
    fsutil.atomic_write_json(root / "b.json", {})
    with fsutil.atomic_path(root / "c.bin") as tmp:
        tmp.write_bytes(b"x")
    with fsutil.atomic_path(root / "d") as tmp:
        tmp.mkdir()
        (tmp / "inner.txt").write_text("x")
    append_line(root / "e.jsonl", {"k": 1})
    run = RunDir.create(root / "runs", backbone="efficientnet_lite0")
    run.write_labels(["a", "b"])
    run.write_status("queued")
    names = ["a.txt", "b.json", "c.bin", "d", "d/inner.txt", "e.jsonl"]
    modes = {n: stat.S_IMODE((root / n).stat().st_mode) for n in names}
    modes["labels.txt"] = stat.S_IMODE(run.labels_path.stat().st_mode)
    modes["status.json"] = stat.S_IMODE(run.status_path.stat().st_mode)
    modes["run folder"] = stat.S_IMODE(run.path.stat().st_mode)
    print(json.dumps(modes))
    """
)


@pytest.mark.parametrize(
    ("umask", "file_mode", "folder_mode"), [("022", 0o644, 0o755), ("027", 0o640, 0o750)]
)
def test_written_files_and_folders_follow_the_umask(
    tmp_path: Path, umask: str, file_mode: int, folder_mode: int
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path), umask],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout)
    folders = {"d", "run folder"}
    assert modes == {n: folder_mode if n in folders else file_mode for n in modes}
