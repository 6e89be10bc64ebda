"""Fuzz the checkpoint reader: random mutations of a small real checkpoint, in this process.

Run as `python -m tests.support.checkpoint_fuzz --cases N --seed S` (the test
runs it in a subprocess with a timeout, so a segfault or a hang fails the test
instead of killing pytest). Each case mutates `legacy_checkpoint()` with byte
flips, truncations, insertions, opcode swaps, repeated slices, or a hostile
snippet (a BUILD, a memo read, a deep list, a huge count) spliced in at an
instruction boundary of the state dict pickle, and reads it.
The only allowed outcomes are a correct read (a dict of names to arrays that
own their memory) or a `StudioError`; anything else is printed and the exit
code is 1. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import io
import json
import pickletools
import random
import resource
import sys
import time
from collections import Counter

import numpy as np

from tests.support.checkpoints import legacy_checkpoint

# Every opcode byte a pickle may hold, to swap in.
OPCODE_BYTES = [op.code.encode("latin-1") for op in pickletools.opcodes]
# Bytes that mean something to the format: small counts, the high bit, pickle's framing.
INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x01", b"\xfe", b"(", b"t", b"b", b".", b"R"]
# Instructions a crafted file would splice in: BUILDs that rewrite what is on the stack,
# memo reads (shared references), deep lists, huge or negative counts, stack shuffles.
SNIPPETS = [
    b"}X\x04\x00\x00\x00size(J\x00\xca\x9a;tsb",  # BUILD {'size': (10**9,)}
    b"}X\x04\x00\x00\x00size(K@tsb",  # BUILD {'size': (64,)}
    b"}X\x06\x00\x00\x00stride(K\x00tsb",  # BUILD {'stride': (0,)}
    b"}X\x05\x00\x00\x00numelJ\xff\xff\xff\x7fsb",  # BUILD on a storage
    b"b",
    b"2",
    b"0",
    b"]" * 64 + b"a" * 63,
    b"\x8a\x08" + b"\xff" * 7 + b"\x7f",  # 2**63 - 1
    b"J\xff\xff\xff\xff",  # -1
    b"(t",
    b")R",
    b"Q",
]


def instruction_starts(data: bytes) -> tuple[list[int], list[int]]:
    """Where the state dict pickle's instructions start, and those right after a REDUCE."""
    handle = io.BytesIO(data)
    for _ in range(3):
        for _op in pickletools.genops(handle):
            pass
    ops = list(pickletools.genops(handle))
    starts = [pos for _op, _arg, pos in ops]
    after_reduce = [ops[i + 1][2] for i, (op, _a, _p) in enumerate(ops[:-1]) if op.name == "REDUCE"]
    return starts, after_reduce


KINDS = ["flip", "truncate", "insert", "repeat", "interesting", "opcode", "splice", "splice"]


def mutate(data: bytes, rng: random.Random, starts: tuple[list[int], list[int]]) -> tuple[str, bytes]:
    """One random mutation of `data` (`starts`: from `instruction_starts`), and its kind."""
    out = bytearray(data)
    kind = rng.choice(KINDS)
    if kind in ("opcode", "splice"):
        # At instruction boundaries of the original (half the time just after an object was
        # built), from the last one back so earlier positions stay valid.
        pool = starts[1] if kind == "splice" and rng.random() < 0.5 else starts[0]
        for at in sorted(set(rng.choices(pool, k=rng.choice([1, 1, 2, 3]))), reverse=True):
            if kind == "splice":
                out[at:at] = rng.choice(SNIPPETS)
            else:
                out[at : at + 1] = rng.choice(OPCODE_BYTES)
        return kind, bytes(out)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
        at = rng.randrange(len(out)) if out else 0
        if kind == "flip" and out:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 4, 8])))
        elif kind == "repeat" and out:
            end = min(len(out), at + rng.randrange(1, 64))
            out[at:at] = out[at:end] * rng.choice([2, 16, 256])
        elif kind == "interesting" and out:
            out[at : at + 1] = rng.choice(INTERESTING)
    return kind, bytes(out)


def check_read(result: object) -> str | None:
    """Why `result` is not a correct read, or None when it is one."""
    if not isinstance(result, dict):
        return f"returned a {type(result).__name__}"
    for key, value in result.items():
        if not isinstance(key, str):
            return f"a {type(key).__name__} key"
        if not isinstance(value, np.ndarray) or not value.flags.owndata:
            return f"{key!r:.40} is not an array of its own"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory_mb", type=int, default=2048)
    args = parser.parse_args(argv)
    # A mutation that made the reader allocate without bound fails here instead of swapping.
    limit = args.memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    from engine.core.errors import StudioError
    from engine.models.torch_checkpoint import read_legacy_checkpoint_bytes

    original = legacy_checkpoint()
    starts = instruction_starts(original)
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    failures = 0
    slowest = 0.0
    for case in range(args.cases):
        kind, data = mutate(original, rng, starts)
        start = time.perf_counter()
        try:
            result = read_legacy_checkpoint_bytes(data, name="fuzz.pth")
        except StudioError as exc:
            outcomes["refused"] += 1
            if "fuzz.pth" not in str(exc):
                failures += 1
                print(f"case {case} ({kind}): error does not name the file: {exc}", flush=True)
        except BaseException as exc:  # noqa: BLE001 - the bug this fuzzer looks for
            failures += 1
            print(f"case {case} ({kind}): {type(exc).__name__}: {str(exc)[:200]}", flush=True)
        else:
            why = check_read(result)
            outcomes["read" if why is None else "bad read"] += 1
            if why is not None:
                failures += 1
                print(f"case {case} ({kind}): {why}", flush=True)
        slowest = max(slowest, time.perf_counter() - start)
    summary = {"cases": args.cases, "failures": failures, "slowest_s": round(slowest, 4), **outcomes}
    print(json.dumps(summary), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
