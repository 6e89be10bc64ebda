"""Legacy torch checkpoints written by hand, so the reader's tests need no torch.

`legacy_checkpoint` writes the five parts `torch.save` wrote before its zip
format (see `engine.models.torch_checkpoint`): three small header pickles,
the state dict pickle, the storage key list, then each storage's element
count and bytes. The state dict pickle is assembled from protocol-2 opcodes
the way torch emits them: `collections.OrderedDict` reduced from `()`, one
`torch._utils._rebuild_tensor_v2` reduce per tensor whose storage is a
persistent id, the memo reused for repeated globals and strings, and a
`BUILD` that sets `_metadata` on the state dict.

The `crafted_*` functions build the hostile files of issue 10, each a small
variation of that layout.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# A small state dict with the shapes a convolution, a batch norm and a dense layer have.
TINY_STATE = {
    "conv.weight": np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) / 10,
    "bn.running_mean": np.array([0.5, -0.25], dtype=np.float32),
    "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    "fc.weight": np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3),
    "fc.bias": np.zeros(4, dtype=np.float32),
}

_STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("uint8"): "ByteStorage",
}


class Assembler:
    """Protocol-2 pickle opcodes, with a memo for globals and strings like torch's pickler."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")
        self._memo: dict[object, int] = {}

    def _put(self, key: object) -> None:
        index = self._memo[key] = len(self._memo)
        self.out += b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)

    def _get(self, key: object) -> bool:
        index = self._memo.get(key)
        if index is None:
            return False
        self.out += b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)
        return True

    def op(self, code: bytes) -> Assembler:
        """Emit raw opcode bytes."""
        self.out += code
        return self

    def glob(self, module: str, name: str) -> Assembler:
        """Push a global (memoised)."""
        if not self._get(("global", module, name)):
            self.out += b"c" + f"{module}\n{name}\n".encode()
            self._put(("global", module, name))
        return self

    def string(self, text: str) -> Assembler:
        """Push a str (memoised)."""
        if not self._get(("str", text)):
            data = text.encode("utf-8")
            self.out += b"X" + struct.pack("<I", len(data)) + data
            self._put(("str", text))
        return self

    def integer(self, value: int) -> Assembler:
        """Push an int with the shortest opcode."""
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)
        elif -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)
        else:
            data = pickle.encode_long(value)
            self.out += b"\x8a" + bytes([len(data)]) + data
        return self

    def int_tuple(self, values: tuple[int, ...]) -> Assembler:
        """Push a tuple of ints."""
        self.out += b"("
        for value in values:
            self.integer(value)
        self.out += b"t"
        return self

    def tensor(
        self,
        key: str,
        storage: str,
        numel: int,
        size: tuple[int, ...],
        stride: tuple[int, ...],
        offset: int = 0,
    ) -> Assembler:
        """Push `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`."""
        self.glob("torch._utils", "_rebuild_tensor_v2").op(b"(")
        # the persistent id: ('storage', FloatStorage, key, 'cpu', numel, None)
        self.op(b"(").string("storage").glob("torch", storage).string(key).string("cpu")
        self.integer(numel).op(b"Nt").op(b"Q")
        self.integer(offset).int_tuple(size).int_tuple(stride)
        self.op(b"\x89").glob("collections", "OrderedDict").op(b")R")
        return self.op(b"tR")

    def stop(self) -> bytes:
        """End the pickle and return its bytes."""
        return bytes(self.out + b".")


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def header() -> bytes:
    """The three header pickles: magic number, protocol version, system info."""
    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"int": 4}}
    return b"".join(pickle.dumps(v, protocol=2) for v in (MAGIC, PROTOCOL_VERSION, sys_info))


def storages_part(keys: list[str], arrays: list[np.ndarray]) -> bytes:
    """The key list pickle, then each storage's 8-byte element count and bytes."""
    out = bytearray(pickle.dumps(keys, protocol=2))
    for array in arrays:
        flat = np.ascontiguousarray(array).reshape(-1)
        out += struct.pack("<q", flat.size) + flat.astype(flat.dtype.newbyteorder("<")).tobytes()
    return bytes(out)


def state_dict_pickle(
    state: dict[str, np.ndarray],
    *,
    after_tensor: Callable[[Assembler, str], None] | None = None,
) -> tuple[bytes, list[str]]:
    """The state dict pickle of `state` and its storage keys, one storage per tensor.

    Args:
        state: parameter name -> array.
        after_tensor: called after each tensor is pushed (to add crafted opcodes).
            Defaults to None.

    Returns:
        (pickle bytes, storage keys in order).
    """
    asm = Assembler()
    asm.glob("collections", "OrderedDict").op(b")R").op(b"(")
    keys = []
    for index, (name, array) in enumerate(state.items()):
        key = str(1000 + index)
        keys.append(key)
        shape = tuple(int(n) for n in array.shape)
        asm.string(name)
        asm.tensor(key, _STORAGE_NAMES[array.dtype], int(array.size), shape, _strides(shape))
        if after_tensor is not None:
            after_tensor(asm, name)
    asm.op(b"u")
    # BUILD: state dict._metadata = OrderedDict({'': {'version': 1}})
    asm.op(b"}").string("_metadata").glob("collections", "OrderedDict").op(b")R")
    asm.string("").op(b"}").string("version").integer(1).op(b"s").op(b"s").op(b"s").op(b"b")
    return asm.stop(), keys


def legacy_checkpoint(state: dict[str, np.ndarray] | None = None) -> bytes:
    """A whole legacy checkpoint of `state`.

    Args:
        state: parameter name -> array. Defaults to `TINY_STATE`.

    Returns:
        The file's bytes.
    """
    state = TINY_STATE if state is None else state
    body, keys = state_dict_pickle(state)
    return header() + body + storages_part(keys, list(state.values()))


# ------------------------------------------------------------------ hostile files of issue 10


def crafted_build_resize(size: int) -> bytes:
    """A tensor whose `size` a BUILD rewrites after the rebuild (and its bounds check) ran.

    `size` far above the storage made numpy read unmapped memory (a segfault);
    a size just above it reads the bytes that follow the storage.
    """
    state = {"w": np.arange(4, dtype=np.float32)}

    def rewrite(asm: Assembler, name: str) -> None:
        asm.op(b"}").string("size").int_tuple((size,)).op(b"s").op(b"b")

    body, keys = state_dict_pickle(state, after_tensor=rewrite)
    return header() + body + storages_part(keys, list(state.values()))


def crafted_shared_references(levels: int = 26) -> bytes:
    """A few hundred bytes whose lists hold the previous list twice, `levels` deep (2**levels paths)."""
    state = {"w": np.arange(4, dtype=np.float32)}
    asm = Assembler()
    asm.glob("collections", "OrderedDict").op(b")R").op(b"(")
    asm.string("w").tensor("0", "FloatStorage", 4, (4,), (1,))
    asm.op(b"q\xf0")  # memo 240: the tensor
    asm.string("nested").op(b"](h\xf0h\xf0e")  # a list of the tensor twice
    for _ in range(levels):
        asm.op(b"q\xf10](h\xf1h\xf1e")  # memoise the last list, pop it, push [last, last]
    asm.op(b"u")
    body = asm.stop()
    return header() + body + storages_part(["0"], list(state.values()))


def crafted_deep_nesting(depth: int = 100_000) -> bytes:
    """A state dict whose one value is a list nested `depth` levels deep."""
    state = {"w": np.arange(4, dtype=np.float32)}
    asm = Assembler()
    asm.glob("collections", "OrderedDict").op(b")R").op(b"(")
    asm.string("w").tensor("0", "FloatStorage", 4, (4,), (1,))
    asm.string("deep").op(b"]" * depth + b"a" * (depth - 1))
    asm.op(b"u")
    return header() + asm.stop() + storages_part(["0"], list(state.values()))


def crafted_huge_elements(count: int = 10**12) -> bytes:
    """A tensor of `count` elements over a 4-element storage (stride 0: the bounds check passes)."""
    state = {"w": np.arange(4, dtype=np.float32)}
    asm = Assembler()
    asm.glob("collections", "OrderedDict").op(b")R").op(b"(")
    asm.string("w").tensor("0", "FloatStorage", 4, (count,), (0,))
    asm.op(b"u")
    return header() + asm.stop() + storages_part(["0"], list(state.values()))
