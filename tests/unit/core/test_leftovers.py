"""engine.core.leftovers (and fsutil.temp_folder / is_held): what a killed process left is swept, nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.core.fsutil import is_held, temp_folder
from engine.core.leftovers import STALE_AFTER_S, sweep_leftovers
from tests.support.cli import REPO_ROOT, run_engine

HOLDER = textwrap.dedent(
    """
    import sys
    from engine.core.fsutil import temp_folder

    with temp_folder(sys.argv[1], sys.argv[2]) as folder:
        print(folder, flush=True)
        sys.stdin.read()  # hold it until the test closes our stdin (or kills us)
    """
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A studio home whose datasets, runs and cache all lie in tmp_path."""
    home = tmp_path / "studio"
    monkeypatch.setenv("RETRAIN_STUDIO_HOME", str(home))
    for name in ("RETRAIN_STUDIO_CACHE", "RETRAIN_STUDIO_RUNS", "RETRAIN_STUDIO_DATASETS"):
        monkeypatch.delenv(name, raising=False)
    return home


def _age(path: Path, seconds: float = 2 * STALE_AFTER_S) -> Path:
    """Set `path`'s modification time `seconds` in the past (without following a link)."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def _folder(path: Path, *, old: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "half.jpg").write_bytes(b"half a photo")
    return _age(path) if old else path


def _file(path: Path, *, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"partial")
    return _age(path) if old else path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_folder_is_held_while_it_lives_and_removed_after(tmp_path: Path) -> None:
    with temp_folder(".set.import-", tmp_path) as folder:
        assert folder.name.startswith(".set.import-") and folder.is_dir()
        assert is_held(folder)
    assert not folder.exists()
    with temp_folder(".set.import-", tmp_path) as folder:
        (folder / "photo.jpg").write_bytes(b"x")
        os.replace(folder, tmp_path / "set")  # renamed into place: kept
    assert (tmp_path / "set" / "photo.jpg").exists()
    assert not is_held(tmp_path / "set")


def test_sweep_removes_old_unheld_studio_temporaries_and_keeps_everything_else(home: Path) -> None:
    datasets, runs, cache = home / "datasets", home / "runs", home / "cache"
    run = runs / "20240101-120000-efficientnet_lite0"
    _file(run / "status.json", old=True)
    removed_expected = {
        _folder(datasets / ".flowers.import-ab12cd34"),
        _folder(datasets / ".flower_photos.extract-x_9y8z7w"),
        _folder(datasets / ".flower_photos.ready-abcdefgh"),
        _folder(datasets / ".demo.tmp-12345678"),
        _folder(datasets / ".demo.old.abcd_123"),
        _folder(datasets / ".deleting-old-set-ab12cd34"),
        _folder(runs / f".deleting-20240101-000000-x-{_dead_pid()}-123456"),
        _file(run / ".status.json.k2j3h4g5.tmp"),
        _folder(run / ".model.keras.tmp-abcdefgh"),
        _folder(run / "export" / ".export-abcdefgh"),
        _file(cache / "backbones" / ".lite0.tflite.abcdefgh.tmp"),
        _file(cache / "scan" / ".0123abcd.json.zzzzzzzz.tmp"),
    }
    outside = _folder(home.parent / "elsewhere", old=False)
    kept = {
        # too young
        _folder(datasets / ".flowers.import-young123", old=False),
        _file(run / ".report.json.young123.tmp", old=False),
        # a live process holds it
        _folder(runs / f".deleting-20240101-000000-y-{os.getpid()}-654321"),
        # foreign names, however old
        _file(datasets / ".DS_Store"),
        _file(datasets / "notes.tmp"),
        _folder(datasets / "my_photos"),
        _folder(datasets / ".flowers.import-nottherightlength"),
        _file(datasets / ".flowers.import-ab12cd34x"),
        _file(datasets / ".flowers.import-fileabcd"),  # a file where the studio makes folders
        _folder(datasets / "my_photos" / ".nested.import-ab12cd34"),  # not a place the studio sweeps
        _folder(run / "tb"),
        _file(run / "status.json"),
    }
    link = datasets / ".linked.import-ab12cd34"
    link.symlink_to(outside, target_is_directory=True)
    _age(link)
    kept.add(link)
    _age(datasets / "my_photos")

    removed = sweep_leftovers()

    assert set(removed) == removed_expected
    assert not any(p.exists() for p in removed_expected)
    assert all(p.exists() or p.is_symlink() for p in kept)
    assert (outside / "half.jpg").exists()  # a link is never followed


def test_a_folder_held_by_a_live_process_is_kept_until_that_process_is_killed(home: Path) -> None:
    datasets = home / "datasets"
    datasets.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, ".flowers.import-", str(datasets)],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        folder = Path(holder.stdout.readline().strip())
        (folder / "daisy").mkdir()
        _age(folder)
        assert sweep_leftovers() == []  # old, but a live import holds it
        assert folder.is_dir()
        holder.send_signal(signal.SIGKILL)  # the import dies without cleaning up
        holder.wait(timeout=30)
        assert folder.is_dir()
        assert sweep_leftovers() == [folder]
        assert not folder.exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_the_cli_sweeps_at_start_and_says_so(tmp_path: Path) -> None:
    home = tmp_path / "studio"
    leftover = _folder(home / "datasets" / ".upload.import-ab12cd34")
    out = run_engine("runs", home=home)
    assert out.returncode == 0, out.stderr
    assert not leftover.exists()
    assert "note: removed 1 temporary item(s)" in out.stderr
