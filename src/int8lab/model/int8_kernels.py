"""Ops ai-edge-quantizer leaves in float that LiteRT (and XNNPACK) run in int8, made integer.

ai-edge-quantizer 0.10 has no recipe for LEAKY_RELU (Darknet's YOLOv3/v4, many float-trained
detectors: 11 of them in YOLOv3-tiny), EXP (a YOLOv3/YOLOX box decode, when every kernel is to be
integer) and a few other elementwise activations, so it leaves them
in float between a DEQUANTIZE of their int8 input and a QUANTIZE of their output, with the output's
calibrated scale already on that QUANTIZE. LiteRT has int8 kernels for them, which rescale from
any input scale to any output scale, as TF's converter writes them. So each such island becomes
the one int8 op: it reads the DEQUANTIZE's int8 input and writes the QUANTIZE's int8 output (a
second QUANTIZE of the same float tensor with other parameters re-quantizes the int8 one).

Ops the caller chose to keep in float (a detector's decode tail) are left as they are, and so is
an op whose output only float ops read (the activation before a detector's output convolutions,
when those stay float): its int8 output would only be dequantized again.
"""

from __future__ import annotations

# Unary ops with int8 and int16 LiteRT kernels that rescale between any two scales, and the op
# version LiteRT registers their integer kernels under.
INTEGER_KERNEL_VERSION = {"LEAKY_RELU": 2, "ELU": 2, "RELU6": 2, "RELU_N1_TO_1": 2, "RELU_0_TO_1": 1, "EXP": 2}


def integer_islands(content: bytes, keep_float: frozenset[str] = frozenset()) -> tuple[bytes, dict]:
    """``content`` with every DEQUANTIZE -> op -> QUANTIZE island of an INTEGER_KERNEL_VERSION op
    (whose output is not in ``keep_float``) replaced by that op in the integer type; and what
    was done: {"integer": {kind: how many}, "beside_float": [outputs of those left float because
    only float ops read them]} (empty when nothing was found)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from int8lab.model.op_rewrite import _drop_unused_tensors, _name, _opcode_version
    from int8lab.model.ranges import _op_name

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    kind = lambda op: _op_name(model, op)  # noqa: E731
    producer = {t: op for op in graph.operators for t in op.outputs}
    readers: dict[int, list] = {}
    for op in graph.operators:
        for t in op.inputs:
            readers.setdefault(t, []).append(op)
    integer = (schema.TensorType.INT8, schema.TensorType.INT16)
    counts: dict[str, int] = {}
    beside_float: list[str] = []
    dropped: set[int] = set()
    for op in graph.operators:
        name = kind(op)
        if name not in INTEGER_KERNEL_VERSION or _name(graph.tensors[op.outputs[0]]) in keep_float:
            continue
        dequantize = producer.get(op.inputs[0])
        out = op.outputs[0]
        quantizes = readers.get(out, [])
        if dequantize is None or kind(dequantize) != "DEQUANTIZE" or not quantizes or out in graph.outputs:
            continue
        if not any(kind(q) == "QUANTIZE" for q in quantizes):
            beside_float.append(_name(graph.tensors[out]))
            continue
        if any(kind(q) != "QUANTIZE" for q in quantizes):
            continue
        source, target = dequantize.inputs[0], quantizes[0].outputs[0]
        if graph.tensors[source].type not in integer or graph.tensors[source].type != graph.tensors[target].type:
            continue
        op.inputs[0], op.outputs = source, [target]
        op.opcodeIndex = _opcode_version(model, op.opcodeIndex, INTEGER_KERNEL_VERSION[name])
        dropped.add(id(quantizes[0]))
        for other in quantizes[1:]:  # another scale of the same values: re-quantize the int8 output
            other.inputs[0] = target
        counts[name] = counts.get(name, 0) + 1
    found = {"integer": counts, "beside_float": beside_float} if counts or beside_float else {}
    if not counts:
        return content, found
    graph.operators = [op for op in graph.operators if id(op) not in dropped]
    read = {t for op in graph.operators for t in op.inputs} | set(graph.outputs)
    graph.operators = [op for op in graph.operators if kind(op) != "DEQUANTIZE" or op.outputs[0] in read]
    _drop_unused_tensors(model, graph)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), found
