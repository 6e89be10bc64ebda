"""A run's LiteRT model made without TensorFlow: the backbone's converted graph plus the head.

The bottleneck features of a run on a LiteRT backbone come from a float
`.tflite` feature extractor (`engine.models.loading` converts and checks it
once and caches it). The head fitted on those features is one dense layer and
a softmax, so the run's whole model is that very flatbuffer with two more
operators: `FULLY_CONNECTED` (the head's kernel and bias as constant tensors)
and `SOFTMAX`. `assemble_classifier` appends them with the schema bindings
LiteRT ships (no TensorFlow, no converter), in milliseconds.

The result is an ordinary single-file float `.tflite`: raw RGB uint8 images
in; output 0 the class probabilities (what `label_image`, the live camera and
any LiteRT program read), output 1 the backbone's features (what the unknown
answer measures); signature `serving_default` names them `probabilities` and
`features`. Its answers are the head's on the very features the training
scored (a test checks them against the head in numpy and against the
converter's model of the same weights).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.core.errors import StudioError
from engine.serve.model_info import attach_tflite_info, pack_tflite

# LiteRT's builtin operator codes and tensor types (tensorflow/lite/schema/schema.fbs).
_FULLY_CONNECTED = 9
_SOFTMAX = 25
_FLOAT32 = 0
OUTPUT_NAMES = ("probabilities", "features")


def _opcode(schema: Any, model: Any, code: int) -> int:
    """The index of builtin operator `code` in the model's table, added when missing."""
    for index, entry in enumerate(model.operatorCodes or []):
        if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code:
            return index
    entry = schema.OperatorCodeT()
    entry.builtinCode = code
    entry.deprecatedBuiltinCode = code
    entry.version = 1
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _constant(schema: Any, model: Any, graph: Any, name: str, array: np.ndarray) -> int:
    """A float32 constant tensor (its own buffer) in `graph`; returns its index."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(array, np.float32).tobytes(), np.uint8)
    model.buffers.append(buffer)
    return _tensor(schema, graph, name, list(array.shape), list(array.shape), len(model.buffers) - 1)


def _tensor(
    schema: Any, graph: Any, name: str, shape: list[int], signature: list[int], buffer: int
) -> int:
    tensor = schema.TensorT()
    tensor.name = name
    tensor.shape = np.asarray(shape, np.int32)
    tensor.shapeSignature = np.asarray(signature, np.int32)
    tensor.type = _FLOAT32
    tensor.buffer = buffer
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _empty_buffer(schema: Any, model: Any) -> int:
    model.buffers.append(schema.BufferT())
    return len(model.buffers) - 1


def assemble_classifier(
    features_tflite: bytes, kernel: np.ndarray, bias: np.ndarray, info: dict[str, Any] | None = None
) -> bytes:
    """A classifier `.tflite`: the feature extractor's graph, then the dense layer and a softmax.

    Args:
        features_tflite: a float feature extractor (one uint8 image input, one float
            `(N, features)` output), as `engine.models.loading` caches it.
        kernel: float `(features, classes)`, as a Keras `Dense` holds it.
        bias: float `(classes,)`.
        info: what the model carries (`engine.serve.model_info.info_for`: labels,
            preprocessing). Defaults to None (nothing).

    Returns:
        The new flatbuffer (outputs: probabilities, then features).

    Raises:
        StudioError: the extractor is not of that shape, or the head does not fit it.
    """
    from ai_edge_litert import schema_py_generated as schema

    kernel = np.asarray(kernel, np.float32)
    bias = np.asarray(bias, np.float32)
    model = schema.ModelT.InitFromPackedBuf(bytearray(features_tflite), 0)
    if len(model.subgraphs or []) != 1 or len(model.subgraphs[0].outputs) != 1:
        raise StudioError(
            "the backbone's LiteRT model is not a single feature extractor; delete the studio's "
            "cache of converted backbones so it is converted again"
        )
    graph = model.subgraphs[0]
    features = int(graph.outputs[0])
    feature_tensor = graph.tensors[features]
    width = int(feature_tensor.shape[-1])
    if kernel.ndim != 2 or kernel.shape[0] != width or bias.shape != (kernel.shape[1],):
        raise StudioError(
            f"the head (kernel {kernel.shape}, bias {bias.shape}) does not fit the backbone's "
            f"{width} features"
        )
    classes = kernel.shape[1]
    batch = int(feature_tensor.shape[0])
    weights = _constant(schema, model, graph, "final_result/kernel", kernel.T)  # LiteRT: (out, in)
    biases = _constant(schema, model, graph, "final_result/bias", bias)
    logits = _tensor(
        schema, graph, "final_result", [batch, classes], [-1, classes], _empty_buffer(schema, model)
    )
    probabilities = _tensor(
        schema, graph, OUTPUT_NAMES[0], [batch, classes], [-1, classes], _empty_buffer(schema, model)
    )

    dense = schema.OperatorT()
    dense.opcodeIndex = _opcode(schema, model, _FULLY_CONNECTED)
    dense.inputs = np.asarray([features, weights, biases], np.int32)
    dense.outputs = np.asarray([logits], np.int32)
    dense.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    dense.builtinOptions = schema.FullyConnectedOptionsT()  # no activation, default weights format
    softmax = schema.OperatorT()
    softmax.opcodeIndex = _opcode(schema, model, _SOFTMAX)
    softmax.inputs = np.asarray([logits], np.int32)
    softmax.outputs = np.asarray([probabilities], np.int32)
    softmax.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    softmax.builtinOptions = schema.SoftmaxOptionsT()
    softmax.builtinOptions.beta = 1.0
    graph.operators.extend([dense, softmax])
    graph.outputs = np.asarray([probabilities, features], np.int32)

    for signature in model.signatureDefs or []:
        outputs = []
        for name, index in zip(OUTPUT_NAMES, (probabilities, features), strict=True):
            entry = schema.TensorMapT()
            entry.name = name
            entry.tensorIndex = index
            outputs.append(entry)
        signature.outputs = outputs
    if info is not None:
        attach_tflite_info(model, info)
    return pack_tflite(model, len(features_tflite) + kernel.nbytes)
