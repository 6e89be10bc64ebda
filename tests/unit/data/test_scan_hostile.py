"""engine.data.scan against hostile folders: pipes, sockets, huge files, trees that are no dataset.

Where a regression would hang or eat the machine (a FIFO, a 2 GB file), the
scan runs in a child process with a timeout, so the test fails instead of
hanging pytest, and the child reports its own peak RSS.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import StudioError
from engine.data.scan import scan_dataset
from engine.data.walk import MAX_FOLDER_DEPTH
from tests.support.cli import REPO_ROOT
from tests.support.factories import image_bytes, make_image, write_class_folders

# VmHWM is this process's own peak RSS; ru_maxrss would also count the parent's
# memory at fork (pytest with TensorFlow loaded), which Linux keeps across exec.
SCAN_CHILD = """
import json, re, sys
from engine.core.errors import StudioError
from engine.data.scan import scan_dataset
try:
    dataset = scan_dataset(sys.argv[1], use_cache=False)
    out = {
        "images": len(dataset.images),
        "problems": [[p.rel_path, p.kind, p.reason] for p in dataset.problems],
    }
except StudioError as exc:
    out = {"error": str(exc)}
status = open("/proc/self/status").read()
out["max_rss_mb"] = int(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1)) / 1024
print(json.dumps(out))
"""
GIB = 1024**3
# The child imports numpy and PIL (about 40-80 MB); reading a 2 GB file whole took 2.1 GB.
RSS_LIMIT_MB = 300


def scan_in_child(
    root: Path, *, timeout: float = 120, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`scan_dataset(root)` in a fresh Python process; its summary and its peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", SCAN_CHILD, str(root)],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,  # a blocking open() fails the test here instead of hanging it
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_named_pipe_socket_and_link_to_a_pipe_are_listed_without_blocking(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 3, "dogs": 3})
    os.mkfifo(root / "cats" / "pipe.jpg")
    os.symlink(root / "cats" / "pipe.jpg", root / "dogs" / "to_pipe.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "dogs" / "sock.png"))
    try:
        result = scan_in_child(root, timeout=60)
    finally:
        server.close()
    assert result["images"] == 6
    kinds = {rel: (kind, reason) for rel, kind, reason in result["problems"]}
    assert kinds["cats/pipe.jpg"][0] == "special_file"
    assert "named pipe" in kinds["cats/pipe.jpg"][1]
    assert kinds["dogs/to_pipe.jpg"][0] == "special_file"
    assert kinds["dogs/sock.png"][0] == "special_file"
    assert "socket" in kinds["dogs/sock.png"][1]


def test_a_symlink_loop_and_a_broken_link_are_listed_not_a_crash(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 3, "dogs": 3})
    os.symlink(root / "cats" / "b.jpg", root / "cats" / "a.jpg")
    os.symlink(root / "cats" / "a.jpg", root / "cats" / "b.jpg")  # a loop: resolve() raised
    os.symlink(root / "dogs" / "gone.jpg", root / "dogs" / "broken.jpg")
    dataset = scan_dataset(root, use_cache=False)
    assert {(p.rel_path, p.kind, p.reason.split(":")[0]) for p in dataset.problems} == {
        ("cats/a.jpg", "symlink", "broken link"),
        ("cats/b.jpg", "symlink", "broken link"),
        ("dogs/broken.jpg", "symlink", "broken link"),
    }
    assert len(dataset.images) == 6


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)  # a hole: no disk used, but read() returns every byte
    return path


def test_a_2_gb_huge_png_is_skipped_unread_and_memory_stays_low(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 6, "dogs": 6})
    _sparse(root / "cats" / "huge.png", 2 * GIB)
    result = scan_in_child(root)
    assert result["images"] == 12
    [(rel, kind, reason)] = result["problems"]
    assert (rel, kind) == ("cats/huge.png", "too_large")
    assert "RETRAIN_STUDIO_MAX_IMAGE_BYTES" in reason
    assert result["max_rss_mb"] < RSS_LIMIT_MB


@pytest.mark.slow  # hashes 2 GB (about 3 s on an idle core)
def test_with_the_cap_raised_a_2_gb_file_is_streamed_not_read_whole(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 6, "dogs": 6})
    # A real PNG followed by 2 GB of zeros: an image the decoder accepts, hashed whole.
    _sparse(root / "cats" / "huge.png", 2 * GIB, image_bytes(make_image(0, 99), "PNG"))
    result = scan_in_child(root, env={"RETRAIN_STUDIO_MAX_IMAGE_BYTES": str(4 * GIB)})
    assert result["images"] == 13 and result["problems"] == []
    assert result["max_rss_mb"] < RSS_LIMIT_MB


def test_the_size_cap_is_configurable_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 3, "dogs": 3})
    (root / "cats" / "big.png").write_bytes(image_bytes(make_image(0, 50, (400, 300)), "PNG"))
    monkeypatch.setenv("RETRAIN_STUDIO_MAX_IMAGE_BYTES", "20000")
    dataset = scan_dataset(root)
    assert [(p.rel_path, p.kind) for p in dataset.problems] == [("cats/big.png", "too_large")]
    monkeypatch.setenv("RETRAIN_STUDIO_MAX_IMAGE_BYTES", str(10**9))  # raised: checked again
    assert scan_dataset(root).problems == []
    monkeypatch.setenv("RETRAIN_STUDIO_MAX_IMAGE_BYTES", "lots")
    with pytest.raises(StudioError, match="RETRAIN_STUDIO_MAX_IMAGE_BYTES='lots'"):
        scan_dataset(root, use_cache=False)


def test_the_type_is_sniffed_from_the_first_bytes_before_decoding(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 3, "dogs": 3})
    (root / "cats" / "movie.jpg").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 5000)
    dataset = scan_dataset(root, use_cache=False)
    [problem] = dataset.problems
    assert (problem.rel_path, problem.kind) == ("cats/movie.jpg", "not_image")
    assert "first bytes" in problem.reason


# ---------------------------------------------------------------- folders that are no dataset


def _text_files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"file{i}.conf").write_text(f"setting = {i}\n")


def test_a_system_like_folder_is_refused_from_its_first_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name in ("boot", "etc", "lib"):
        _text_files(root / name, 20)
    # Later folders are never walked: one of them is deeper than any dataset.
    deep = root / "usr" / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "h"
    deep.mkdir(parents=True)
    with pytest.raises(StudioError) as caught:
        scan_dataset(root)
    message = str(caught.value)
    assert "is not a dataset folder" in message
    assert "no image among the first files" in message and "'boot', 'etc', 'lib'" in message
    assert "one sub-folder per class" in message  # what a dataset folder looks like


def test_a_folder_deeper_than_any_dataset_is_refused(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 3, "dogs": 3})
    deep = root / "dogs" / Path(*[f"level{i}" for i in range(MAX_FOLDER_DEPTH + 1)])
    deep.mkdir(parents=True)
    (deep / "x.jpg").write_bytes(image_bytes(make_image(1, 9)))
    with pytest.raises(
        StudioError, match=rf"more than {MAX_FOLDER_DEPTH} folders deep.*one sub-folder per class"
    ):
        scan_dataset(root)
    # one level less is a dataset (photos sorted by year/month/day...)
    (deep / "x.jpg").unlink()
    deep.rmdir()
    (deep.parent / "x.jpg").write_bytes(image_bytes(make_image(1, 9)))
    assert len(scan_dataset(root).images) == 7


def test_a_folder_with_far_too_many_files_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_class_folders(tmp_path / "photos", {"cats": 30, "dogs": 30})
    monkeypatch.setenv("RETRAIN_STUDIO_MAX_DATASET_FILES", "50")
    with pytest.raises(StudioError, match="more than 50 files and folders"):
        scan_dataset(root)
    monkeypatch.setenv("RETRAIN_STUDIO_MAX_DATASET_FILES", "100")
    assert len(scan_dataset(root).images) == 60


def test_two_classes_of_broken_files_are_still_scanned_and_listed(tmp_path: Path) -> None:
    # Too few folders to judge: the usual findings, not a refusal.
    for name in ("a", "b"):
        _text_files(tmp_path / "photos" / name, 3)
    dataset = scan_dataset(tmp_path / "photos")
    assert len(dataset.problems) == 6 and not dataset.trainable


def test_the_filesystem_root_is_refused_quickly() -> None:
    # `/` as "Local folder" read every file below it; now it is refused from its first folders.
    result = scan_in_child(Path("/"), timeout=120)
    assert "is not a dataset folder" in result.get("error", ""), result
