"""What a model file is, told by its bytes, and what travels inside it.

A file's kind comes from its content, never its name: the codelab saves a
Keras model as `retrained_graph.pb`, and a user may rename any file. A
`.tflite` flatbuffer carries the identifier `TFL3` at bytes 4-8; a `.keras`
file is a zip holding `config.json` and `model.weights.h5`; a SavedModel is a
folder with `saved_model.pb`; an ONNX model is a protobuf `ModelProto` whose
serialisers write its `ir_version` first (field 1, a small varint) and then
one of its next fields (producer, domain, version, graph, opsets).

Every model the studio writes carries its labels and the preprocessing it
was trained with (input size, central crop, resample), so `label_image` needs
no `--labels` and prepares a photo exactly as training did:

- in a `.keras` zip, as one more member, `retrain_studio.json` (Keras ignores
  members it does not know);
- in a `.tflite`, as a flatbuffer metadata entry named `retrain_studio`
  (LiteRT ignores metadata it does not know); written and read with the
  schema bindings LiteRT ships, so no TensorFlow is needed;
- in an `.onnx`, as the model's metadata property `retrain_studio` (written
  with `onnx`, read with onnxruntime's `custom_metadata_map`).

The info also carries the run's unknown rules (`unknown`, as in the run's
`unknown.json`) when the run has them, so a model file alone can answer
`unknown` (`engine.serve.unknown`).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from engine.core.errors import StudioError

INFO_NAME = "retrain_studio"
KERAS_INFO_MEMBER = f"{INFO_NAME}.json"
INFO_FORMAT = 1
KINDS = ("tflite", "keras", "saved_model", "onnx")
_TFLITE_IDENTIFIER = b"TFL3"
_ZIP_MAGIC = b"PK\x03\x04"
_KERAS_MEMBERS = {"config.json", "model.weights.h5"}
# ModelProto's fields after ir_version (1), as protobuf tags: producer_name (2), producer_version
# (3), domain (4), model_version (5), doc_string (6), graph (7), opset_import (8).
_ONNX_SECOND_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42})
_ONNX_MAX_IR_VERSION = 64


def _looks_like_onnx(head: bytes) -> bool:
    """Whether a file's first bytes are an ONNX ModelProto's: `ir_version` first, then a known field."""
    return (
        len(head) >= 3
        and head[0] == 0x08
        and 1 <= head[1] <= _ONNX_MAX_IR_VERSION
        and head[2] in _ONNX_SECOND_TAGS
    )


def model_kind(path: str | os.PathLike[str]) -> str:
    """What kind of model `path` holds, from its content.

    Args:
        path: a file or a folder.

    Returns:
        "tflite", "keras", "saved_model" or "onnx".

    Raises:
        StudioError: it does not exist, or is none of those (the message says what it looks like).
    """
    target = Path(path)
    if target.is_dir():
        if (target / "saved_model.pb").is_file():
            return "saved_model"
        raise StudioError(
            f"{str(path)!r} is a folder without saved_model.pb; give a model file, a SavedModel "
            "folder or a run folder"
        )
    try:
        with target.open("rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise StudioError(f"model {str(path)!r} does not exist; check the path") from None
    except OSError as exc:
        raise StudioError(f"model {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    if head[4:8] == _TFLITE_IDENTIFIER:
        return "tflite"
    if _looks_like_onnx(head):
        return "onnx"
    if head[:4] == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(target) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            names = set()
        if names >= _KERAS_MEMBERS:
            return "keras"
    raise StudioError(
        f"{str(path)!r} is not a model Retrain Studio can read: neither a .tflite flatbuffer, a "
        ".keras zip, an ONNX model nor a SavedModel folder (a TensorFlow 1 frozen graph from the original "
        "retrain.py is not supported: retrain with `python -m engine retrain`)"
    )


def info_for(
    labels: list[str], config: dict[str, Any], unknown: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The facts a model file should carry, from a run's labels and config.json.

    Args:
        labels: the class names in output order.
        config: the run's config.json (its `input_size`, `crop_fraction`, `resample`,
            `architecture`, `run_id`).
        unknown: the run's unknown rules (`unknown.json`, `engine.serve.unknown.RuleSet`),
            carried as `unknown`. Defaults to None (none: the model always names a class).

    Returns:
        A JSON-ready dict.
    """
    extra = {} if unknown is None else {"unknown": unknown}
    return {
        **extra,
        "format": INFO_FORMAT,
        "labels": list(labels),
        "input_size": config.get("input_size"),
        "crop_fraction": config.get("crop_fraction"),
        "resample": config.get("resample"),
        "architecture": config.get("architecture"),
        "run_id": config.get("run_id"),
    }


def embed_in_keras(path: str | os.PathLike[str], info: dict[str, Any]) -> None:
    """Add (or replace) the info member of a `.keras` zip, in place.

    Call it on the file before it is renamed into place (it rewrites the zip).

    Args:
        path: the `.keras` file just saved.
        info: what `info_for` gives.
    """
    target = Path(path)
    with zipfile.ZipFile(target) as archive:
        if KERAS_INFO_MEMBER not in archive.namelist():
            members = None
        else:
            members = [
                (i, archive.read(i)) for i in archive.infolist() if i.filename != KERAS_INFO_MEMBER
            ]
    if members is not None:  # rewrite without the old member
        with zipfile.ZipFile(target, "w") as archive:
            for item, data in members:
                archive.writestr(item, data)
    with zipfile.ZipFile(target, "a") as archive:
        archive.writestr(KERAS_INFO_MEMBER, json.dumps(info, indent=1, sort_keys=True))


def tflite_with_info(content: bytes, info: dict[str, Any]) -> bytes:
    """A `.tflite` flatbuffer with the info added as metadata (any older entry replaced).

    Args:
        content: the flatbuffer.
        info: what `info_for` gives.

    Returns:
        The new flatbuffer: the same model, one more metadata entry.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    attach_tflite_info(model, info)
    return pack_tflite(model, len(content))


def attach_tflite_info(model: Any, info: dict[str, Any]) -> None:
    """Put the info into an unpacked `.tflite` (a schema `ModelT`) as its metadata entry.

    Args:
        model: the `ModelT`, changed in place (any older entry is replaced).
        info: what `info_for` gives.
    """
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(info, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = INFO_NAME
    entry.buffer = len(model.buffers) - 1
    kept = [m for m in (model.metadata or []) if _text(m.name) != INFO_NAME]
    model.metadata = [*kept, entry]


def pack_tflite(model: Any, size_hint: int) -> bytes:
    """An unpacked `.tflite` (a schema `ModelT`) as flatbuffer bytes.

    Args:
        model: the `ModelT`.
        size_hint: about how many bytes it takes (the builder's first allocation).
    """
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(model.Pack(builder), file_identifier=_TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _tflite_info(path: Path) -> dict[str, Any] | None:
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    model = schema.Model.GetRootAsModel(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _text(entry.Name()) == INFO_NAME:
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(raw).decode("utf-8"))
    return None


def onnx_with_info(path: str | os.PathLike[str], info: dict[str, Any]) -> None:
    """Add (or replace) the info metadata property of an `.onnx` file, in place.

    Call it on the file before it is renamed into place (it rewrites the file).

    Args:
        path: the `.onnx` file just written.
        info: what `info_for` gives.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != INFO_NAME]
    del model.metadata_props[:]
    for key, value in [*kept, (INFO_NAME, json.dumps(info, sort_keys=True))]:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _onnx_info(path: Path) -> dict[str, Any] | None:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
        return None
    raw = session.get_modelmeta().custom_metadata_map.get(INFO_NAME)
    return json.loads(raw) if raw else None


def _keras_info(path: Path) -> dict[str, Any] | None:
    with zipfile.ZipFile(path) as archive:
        if KERAS_INFO_MEMBER not in archive.namelist():
            return None
        return json.loads(archive.read(KERAS_INFO_MEMBER).decode("utf-8"))


def read_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The info a model file carries, or None when it carries none (or it cannot be read).

    Args:
        path: a model file (or a SavedModel folder, which carries none).

    Returns:
        The dict `info_for` made, when present and well formed.
    """
    target = Path(path)
    try:
        kind = model_kind(target)
        readers = {"tflite": _tflite_info, "keras": _keras_info, "onnx": _onnx_info}
        reader = readers.get(kind)
        info = reader(target) if reader is not None else None
    except (StudioError, OSError, ValueError, zipfile.BadZipFile, IndexError, TypeError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("labels"), list):
        return None
    return info
