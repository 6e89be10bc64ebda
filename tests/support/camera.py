"""A fake camera for Chromium: a Y4M clip, and a network namespace WebRTC can use.

Chromium's `--use-file-for-fake-video-capture=CLIP.y4m` plays a Y4M file as
the camera (in a loop). Y4M is a header line, then per frame `FRAME\\n` and
the Y, Cb and Cr planes (4:2:0: Cb and Cr at half width and height), written
here with Pillow's YCbCr conversion.

WebRTC finds no candidate pair over loopback alone, and its traffic must not
use the machine's real interfaces: `namespace_command` wraps a command so it
runs in a new network namespace (`unshare -n`, root only) with `lo` up and a
veth pair on TEST-NET-1 addresses (192.0.2.0/24, never routed anywhere).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

INSIDE_ENV = "RETRAIN_STUDIO_TEST_NETNS"
_SETUP = (
    "ip link set lo up && ip link add v0 type veth peer name v1 && "
    "ip addr add 192.0.2.1/24 dev v0 && ip addr add 192.0.2.2/24 dev v1 && "
    'ip link set v0 up && ip link set v1 up && exec "$@"'
)


def write_y4m(
    path: Path, scenes: Sequence[tuple[Image.Image, int]], *, size=(640, 480), fps: int = 15
) -> Path:
    """Write a Y4M clip: each `(image, frames)` scene shown for that many frames.

    Args:
        path: the .y4m file to write.
        scenes: images (resized to `size`) and how many frames each lasts.
        size: `(width, height)`, both even. Defaults to (640, 480).
        fps: frames per second. Defaults to 15.

    Returns:
        `path`.
    """
    width, height = size
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image, frames in scenes:
            ycbcr = image.convert("RGB").resize(size, Image.Resampling.BILINEAR).convert("YCbCr")
            y, cb, cr = (np.asarray(plane, np.uint8) for plane in ycbcr.split())
            half = (width // 2, height // 2)
            chroma = [
                np.asarray(Image.fromarray(p).resize(half, Image.Resampling.BOX)) for p in (cb, cr)
            ]
            frame = b"FRAME\n" + y.tobytes() + chroma[0].tobytes() + chroma[1].tobytes()
            out.write(frame * frames)
    return path


def namespace_unavailable() -> str | None:
    """Why a network namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "making a network namespace (unshare -n) needs root"
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found" if missing else None


def inside_namespace() -> bool:
    """Whether this process runs in the namespace `namespace_command` made."""
    return os.environ.get(INSIDE_ENV) == "1"


def namespace_command(command: Sequence[str]) -> list[str]:
    """`command` run in a new network namespace with `lo` and a veth pair up (see the module)."""
    return ["unshare", "-n", "--", "sh", "-c", _SETUP, "sh", *command]
