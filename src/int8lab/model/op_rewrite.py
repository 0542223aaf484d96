"""Ops ai-edge-quantizer cannot quantize, rewritten in a float .tflite as equal ones it can.

TensorFlow lowers Keras' nearest-neighbour UpSampling2D (``ops.repeat``) and onnx2tf lowers
broadcasts to EXPAND_DIMS and TILE. ai-edge-quantizer has no int8 recipe for either, so it leaves
them in float, and the int8 model fails its fully-integer check (a Keras YOLO's upsampling, say).
With static shapes both are data movement that its supported ops express exactly:

- EXPAND_DIMS is a RESHAPE to its output shape;
- TILE that only repeats along axes of size 1 is a BROADCAST_TO its output shape;
- REDUCE_MAX (YOLO-World's adaptive max pools, an attention's max over its keys; ai-edge-quantizer
  has no recipe for it) over adjacent axes is a MAX_POOL_2D of a [1, before, reduced, after]
  reshape, with a window spanning the reduced axes, reshaped back;
- a float16 constant read through a DEQUANTIZE (the weights of an fp16 export, Ultralytics'
  ``_float16.tflite`` among them; ai-edge-quantizer finds no constant weights and fails) is the
  float32 constant it dequantizes to;
- and the whole repeat of a nearest upsampling (reshape, tile rows, reshape, tile columns,
  reshape) is one RESIZE_NEAREST_NEIGHBOR, as the PyTorch/ONNX route writes it: the four
  BROADCAST_TO would run on LiteRT's slow built-in kernels (the example detector in Keras: int8
  1.16 ms, 0.70 ms with the resize, like its ONNX twin).

Nothing else changes: the same tensors, names and values, so the rewritten model is the float
reference too. The shapes written are those of a batch of one, the batch int8lab calibrates,
validates and benchmarks with.
"""

from __future__ import annotations

import numpy as np

PLACEHOLDER_FOR_GREATER_OP_CODES = 127  # the deprecated byte's value for builtin codes above it
FIRST_VERSION = {"BROADCAST_TO": 2}  # LiteRT registers BROADCAST_TO from version 2 (float and int8)
REWRITTEN_AS = {"EXPAND_DIMS": "RESHAPE", "TILE": "BROADCAST_TO",
                "UPSAMPLING": "RESIZE_NEAREST_NEIGHBOR (a nearest upsampling's reshape/tile chain)",
                "REDUCE_MAX": "MAX_POOL_2D (between reshapes)",
                "DEQUANTIZE": "float32 constants (the float16 weights of an fp16 export, widened)"}
# what quantizable_ops' counts became


def quantizable_ops(content: bytes) -> tuple[bytes, dict]:
    """``content`` with its EXPAND_DIMS and size-1 TILE ops rewritten; and how many of each."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from int8lab.model.ranges import _op_name

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    counts: dict[str, int] = {}
    for graph in model.subgraphs:
        widened = _widen_float16_constants(model, graph)
        if widened:
            counts["DEQUANTIZE"] = widened
        upsamplings = _fuse_nearest_upsampling(model, graph)
        if upsamplings:
            counts["UPSAMPLING"] = upsamplings
        for op in list(graph.operators):
            kind = _op_name(model, op)
            if kind == "REDUCE_MAX" and _reduce_max_as_pool(model, graph, op):
                counts[kind] = counts.get(kind, 0) + 1
                continue
            out = graph.tensors[op.outputs[0]].shape
            if out is None or len(out) == 0 or np.any(np.asarray(out) <= 0):
                continue
            if kind == "EXPAND_DIMS":
                _retarget(model, graph, op, schema.BuiltinOperator.RESHAPE, out,
                          schema.BuiltinOptions.ReshapeOptions, schema.ReshapeOptionsT())
                op.builtinOptions.newShape = [int(v) for v in out]
            elif kind == "TILE" and _repeats_size_one_axes(model, graph, op):
                _retarget(model, graph, op, schema.BuiltinOperator.BROADCAST_TO, out,
                          schema.BuiltinOptions.BroadcastToOptions, schema.BroadcastToOptionsT())
            else:
                continue
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return content, {}
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), counts


def _widen_float16_constants(model, graph) -> int:
    """Each DEQUANTIZE of a float16 constant dropped, its output given the float32 values; how many."""
    from tensorflow.lite.python import schema_py_generated as schema

    from int8lab.model.ranges import _op_name

    widened = []
    for op in graph.operators:
        source = graph.tensors[op.inputs[0]] if len(op.inputs) else None
        data = model.buffers[source.buffer].data if source is not None else None
        if _op_name(model, op) != "DEQUANTIZE" or source.type != schema.TensorType.FLOAT16 or data is None \
                or len(data) == 0:
            continue
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.frombuffer(bytes(data), np.float16).astype(np.float32).tobytes(), np.uint8)
        model.buffers.append(buffer)
        graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
        widened.append(id(op))
    if widened:
        graph.operators = [op for op in graph.operators if id(op) not in widened]
        _drop_unused_tensors(model, graph)
    return len(widened)


def _reduce_max_as_pool(model, graph, op) -> bool:
    """Replace a REDUCE_MAX over adjacent axes of a static tensor by RESHAPE [1, before, reduced,
    after] -> MAX_POOL_2D (window 1 x reduced) -> RESHAPE to its output; False where it cannot."""
    from tensorflow.lite.python import schema_py_generated as schema

    source, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    axes_tensor = graph.tensors[op.inputs[1]]
    data = model.buffers[axes_tensor.buffer].data
    if source.shape is None or out.shape is None or data is None or len(data) == 0 \
            or np.any(np.asarray(source.shape) <= 0) or np.any(np.asarray(out.shape) <= 0):
        return False
    shape = [int(v) for v in source.shape]
    axes = sorted({int(a) % len(shape) for a in np.frombuffer(bytes(data), _int_type(axes_tensor.type))})
    if axes != list(range(axes[0], axes[-1] + 1)):
        return False
    before, reduced, after = (int(np.prod(shape[:axes[0]])), int(np.prod(shape[axes[0]:axes[-1] + 1])),
                              int(np.prod(shape[axes[-1] + 1:])))
    name = _name(out)
    pool_in = _new_tensor(graph, f"{name}/pool_input", [1, before, reduced, after], source.type)
    pool_out = _new_tensor(graph, f"{name}/pool", [1, before, 1, after], source.type)
    options = schema.Pool2DOptionsT()
    options.padding, options.strideH, options.strideW = schema.Padding.VALID, 1, 1
    options.filterHeight, options.filterWidth = 1, reduced
    into = _reshape_op(model, graph, op.inputs[0], pool_in, [1, before, reduced, after])
    back = _reshape_op(model, graph, pool_out, op.outputs[0], [int(v) for v in out.shape])
    op.opcodeIndex = _opcode(model, schema.BuiltinOperator.MAX_POOL_2D)
    op.inputs, op.outputs = [pool_in], [pool_out]
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.Pool2DOptions, options
    at = graph.operators.index(op)
    graph.operators[at:at + 1] = [into, op, back]
    return True


def _new_tensor(graph, name: str, shape: list[int], tensor_type: int) -> int:
    from tensorflow.lite.python import schema_py_generated as schema

    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name, list(shape), tensor_type, 0
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _reshape_op(model, graph, source: int, target: int, shape: list[int]):
    """A RESHAPE of tensor ``source`` into tensor ``target`` of ``shape``."""
    from tensorflow.lite.python import schema_py_generated as schema

    op = schema.OperatorT()
    op.inputs, op.outputs = [source], [target]
    _retarget(model, graph, op, schema.BuiltinOperator.RESHAPE, shape, schema.BuiltinOptions.ReshapeOptions,
              schema.ReshapeOptionsT())
    op.builtinOptions.newShape = list(shape)
    return op


def _int_type(tensor_type: int):
    from tensorflow.lite.python import schema_py_generated as schema

    return np.int64 if tensor_type == schema.TensorType.INT64 else np.int32


def _fuse_nearest_upsampling(model, graph) -> int:
    """Each RESHAPE [1,H,W,C]->[1,H,1,W,C], TILE ->[1,H,k,W,C], RESHAPE ->[1,kH,W,1,C], TILE
    ->[1,kH,W,j,C], RESHAPE ->[1,kH,jW,C] chain (TF's repeat twice) replaced by one
    RESIZE_NEAREST_NEIGHBOR of its input; how many."""
    from tensorflow.lite.python import schema_py_generated as schema

    from int8lab.model.ranges import _op_name

    kind = lambda op: _op_name(model, op)  # noqa: E731
    shape = lambda t: list(graph.tensors[t].shape) if graph.tensors[t].shape is not None else []  # noqa: E731
    readers = {}
    for op in graph.operators:
        for t in op.inputs:
            readers.setdefault(t, []).append(op)
    follow = lambda op, kinds: (readers.get(op.outputs[0], [None])[0]  # noqa: E731
                                if len(readers.get(op.outputs[0], [])) == 1 and op.outputs[0] not in graph.outputs
                                and kind(readers[op.outputs[0]][0]) in kinds else None)
    moves, tiles = ("RESHAPE", "EXPAND_DIMS"), ("TILE", "BROADCAST_TO")
    fused, dropped = 0, set()
    for first in list(graph.operators):
        if kind(first) not in moves or id(first) in dropped or len(shape(first.inputs[0])) != 4:
            continue
        chain = [first]
        for kinds in (tiles, moves, tiles, moves):
            chain.append(follow(chain[-1], kinds) if chain[-1] is not None else None)
        if None in chain:
            continue
        (n, h, w, c), out = shape(first.inputs[0]), [shape(op.outputs[0]) for op in chain]
        k, j = (out[1][2] if len(out[1]) == 5 else 0), (out[3][3] if len(out[3]) == 5 else 0)
        if n != 1 or not k or not j or out != [[1, h, 1, w, c], [1, h, k, w, c], [1, k * h, w, 1, c],
                                              [1, k * h, w, j, c], [1, k * h, j * w, c]]:
            continue
        last = chain[-1]
        _retarget(model, graph, last, schema.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR, [k * h, j * w],
                  schema.BuiltinOptions.ResizeNearestNeighborOptions, schema.ResizeNearestNeighborOptionsT())
        last.inputs = [first.inputs[0], last.inputs[1]]
        dropped.update(id(op) for op in chain[:-1])
        fused += 1
    graph.operators = [op for op in graph.operators if id(op) not in dropped]
    if fused:
        _drop_unused_tensors(model, graph)
    return fused


def _drop_unused_tensors(model, graph) -> None:
    """Remove the tensors no op, graph edge or signature names any more (ai-edge-quantizer reads
    every tensor), renumbering the references."""
    used = {t for op in graph.operators for t in (*op.inputs, *op.outputs) if t >= 0}
    used |= set(graph.inputs) | set(graph.outputs)
    keep = sorted(used)
    index = {old: new for new, old in enumerate(keep)}
    graph.tensors = [graph.tensors[t] for t in keep]
    for op in graph.operators:
        op.inputs = [index[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [index[t] for t in op.outputs]
    graph.inputs, graph.outputs = [index[t] for t in graph.inputs], [index[t] for t in graph.outputs]
    held = {t.buffer for g in model.subgraphs for t in g.tensors} | {m.buffer for m in model.metadata or []}
    for k, buffer in enumerate(model.buffers):
        if k not in held:
            buffer.data = None  # no tensor reads it any more (an fp16 constant, say): not written out
    subgraph = model.subgraphs.index(graph)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == subgraph:
            for entry in (*(signature.inputs or []), *(signature.outputs or [])):
                entry.tensorIndex = index[entry.tensorIndex]


def _repeats_size_one_axes(model, graph, op) -> bool:
    source = graph.tensors[op.inputs[0]].shape
    multiples = graph.tensors[op.inputs[1]]
    data = model.buffers[multiples.buffer].data
    if source is None or data is None or len(data) == 0:
        return False
    repeats = np.frombuffer(bytes(data), _int_type(multiples.type))
    return len(repeats) == len(source) and all(r == 1 or s == 1 for r, s in zip(repeats, source))


def _retarget(model, graph, op, builtin: int, shape, options_type: int, options) -> None:
    """Make ``op`` a ``builtin`` whose second input is a new int32 constant holding ``shape``."""
    from tensorflow.lite.python import schema_py_generated as schema

    op.opcodeIndex = _opcode(model, builtin)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.asarray(shape, np.int32).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer = [len(shape)], schema.TensorType.INT32, len(model.buffers) - 1
    tensor.name = f"{_name(graph.tensors[op.outputs[0]])}/shape"
    graph.tensors.append(tensor)
    op.inputs = [op.inputs[0], len(graph.tensors) - 1]
    op.builtinOptionsType, op.builtinOptions = options_type, options


def _opcode(model, builtin: int) -> int:
    from tensorflow.lite.python import schema_py_generated as schema

    for k, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return k
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode = builtin, min(builtin, PLACEHOLDER_FOR_GREATER_OP_CODES)
    name = next(name for name, value in vars(schema.BuiltinOperator).items() if value == builtin)
    code.version = FIRST_VERSION.get(name, 1)
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _opcode_version(model, index: int, version: int) -> int:
    """The operator code like ``model.operatorCodes[index]`` at ``version`` (added if missing)."""
    from tensorflow.lite.python import schema_py_generated as schema

    code = model.operatorCodes[index]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    for k, other in enumerate(model.operatorCodes):
        if max(other.builtinCode, other.deprecatedBuiltinCode) == builtin and other.version == version:
            return k
    new = schema.OperatorCodeT()
    new.builtinCode, new.deprecatedBuiltinCode, new.version = code.builtinCode, code.deprecatedBuiltinCode, version
    model.operatorCodes.append(new)
    return len(model.operatorCodes) - 1


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
