"""Seeing, from outside, that a process is waiting for a file lock (`flock`).

A test that checks "the second one waits for the first" must know the second
one has reached the lock before it lets the first go; /proc/locks lists every
process blocked in `flock` as a `->` line with its pid.
"""

from __future__ import annotations

from pathlib import Path

PROC_LOCKS = Path("/proc/locks")


def blocked_on_a_lock(pid: int) -> bool:
    """Whether process `pid` is blocked waiting for an `flock` right now.

    Args:
        pid: the process id.

    Returns:
        True when /proc/locks lists `pid` as a waiter.
    """
    for line in PROC_LOCKS.read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[2] == "FLOCK" and fields[5] == str(pid):
            return True
    return False
