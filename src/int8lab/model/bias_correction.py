"""Bias correction: the mean shift that int8 weights give each layer's output, taken out of its bias.

Rounding a layer's weights W to int8 (Wq) moves its output by (Wq - W) x. Over the images that is
not zero on average: it is (Wq - W) E[x], one constant per output channel, and the next layers
carry it on. Subtracting it from the float bias before quantizing (the bias stays int32, so the
correction survives) removes that systematic part of the error (Nagel et al., "Data-Free
Quantization", 2019, here with E[x] measured on the calibration images). Wq is read from the
quantized model itself, so whatever range algorithm chose the weight scales, the correction
matches it.

Whether it is kept is measured, not assumed: ``ranking_indices`` keeps a quarter of the calibration
images out of E[x], and the quantized model with and without the correction is compared with the
float model on them.
"""

from __future__ import annotations

import numpy as np

RANKING_EVERY = 4  # every 4th calibration image ranks, the others give E[x]
MIN_RANKING = 2


def ranking_indices(count: int) -> list[int]:
    """The positions of the calibration images that rank the correction (every RANKING_EVERY-th);
    the others give E[x]. None rank when they would be too few to mean anything."""
    ranking = list(range(RANKING_EVERY - 1, count, RANKING_EVERY))
    return ranking if len(ranking) >= MIN_RANKING else []


def layer_inputs(content: bytes) -> frozenset[str]:
    """The input tensors of every layer with a bias: whose means the correction needs."""
    tfl, _, graph, layers = _layers(content)
    return frozenset(tfl.get_tensor_name(graph.tensors[op.inputs[0]]) for _, op in layers)


def _layers(content: bytes):
    """(model objects, [(kind, op)] of the layers with weights and a bias)."""
    from int8lab.model.ranges import _WEIGHT_AXIS, _graph, _op_name

    tfl, model, graph = _graph(content)
    layers = [(kind, op) for op in graph.operators
              if (kind := _op_name(model, op)) in _WEIGHT_AXIS and len(op.inputs) > 2 and op.inputs[2] >= 0]
    return tfl, model, graph, layers


def _dequantized_weights(tfl, model, tensor) -> np.ndarray | None:
    data = tfl.get_tensor_data(tensor, model.buffers)
    quantization = tensor.quantization
    if data is None or data.dtype != np.int8 or quantization is None or quantization.scale is None:
        return None
    axis = quantization.quantizedDimension
    shape = [1] * data.ndim
    shape[axis] = -1
    scale = np.asarray(quantization.scale, np.float64).reshape(shape if len(quantization.scale) > 1 else [1])
    zero = np.asarray(quantization.zeroPoint if quantization.zeroPoint is not None else [0], np.float64)
    return (data.astype(np.float64) - zero.reshape(scale.shape)) * scale


def _shift(kind: str, weight_error: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(Wq - W) E[x] per output channel, padding ignored (a border's zeros are a small share)."""
    if kind == "CONV_2D":  # [out, kh, kw, in]
        return np.einsum("okhi,i->o", weight_error, mean)
    if kind == "DEPTHWISE_CONV_2D":  # [1, kh, kw, out]
        return weight_error.reshape(-1, weight_error.shape[-1]).sum(0) * mean
    return weight_error @ mean  # FULLY_CONNECTED [out, in]


def correct_biases(float_content: bytes, quantized_content: bytes, means: dict[str, np.ndarray],
                   keep_float: frozenset[str] = frozenset()) -> tuple[bytes, int]:
    """The float model with each layer's bias less the output shift its int8 weights (as in
    ``quantized_content``) give; and how many layers were corrected. Layers left in float (in
    ``quantized_content``, or named by their output in ``keep_float``), or sharing their bias
    tensor with another layer, are left alone."""
    from tensorflow.lite.tools import flatbuffer_utils

    tfl, model, graph, layers = _layers(float_content)
    qtfl, qmodel, qgraph, qlayers = _layers(quantized_content)
    quantized = {qtfl.get_tensor_name(qgraph.tensors[op.outputs[0]]): op for _, op in qlayers}
    tensor_users, buffer_users = {}, _buffer_users(graph)
    for op in graph.operators:
        for i in op.inputs:
            tensor_users[i] = tensor_users.get(i, 0) + 1
    corrected = 0
    for kind, op in layers:
        output = tfl.get_tensor_name(graph.tensors[op.outputs[0]])
        qop = None if output in keep_float else quantized.get(output)
        mean = means.get(tfl.get_tensor_name(graph.tensors[op.inputs[0]]))
        if qop is None or mean is None or tensor_users[op.inputs[2]] > 1:
            continue
        weights = tfl.get_tensor_data(graph.tensors[op.inputs[1]], model.buffers)
        dequantized = _dequantized_weights(qtfl, qmodel, qgraph.tensors[qop.inputs[1]])
        bias_tensor = graph.tensors[op.inputs[2]]
        bias = tfl.get_tensor_data(bias_tensor, model.buffers)
        if (weights is None or dequantized is None or bias is None or weights.dtype != np.float32
                or dequantized.shape != weights.shape or bias.dtype != np.float32):
            continue
        shift = _shift(kind, dequantized - weights.astype(np.float64), mean)
        if shift.shape != bias.shape:
            continue
        _write_bias(model, bias_tensor, buffer_users, bias - shift)
        corrected += 1
    if not corrected:
        return float_content, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), corrected


def shift_biases(content: bytes, outputs: set[str], delta) -> bytes:
    """The model with ``delta`` (a number, or one per output channel) added to the bias of each
    layer writing one of ``outputs``, or to the constant operand of an ADD writing one."""
    from tensorflow.lite.tools import flatbuffer_utils

    from int8lab.model.ranges import _op_name

    tfl, model, graph, layers = _layers(content)
    users = _buffer_users(graph)
    biases = [graph.tensors[op.inputs[2]] for _, op in layers
              if tfl.get_tensor_name(graph.tensors[op.outputs[0]]) in outputs]
    biases += [graph.tensors[constant] for op in graph.operators
               if _op_name(model, op) == "ADD" and tfl.get_tensor_name(graph.tensors[op.outputs[0]]) in outputs
               for constant in op.inputs if tfl.get_tensor_data(graph.tensors[constant], model.buffers) is not None]
    for bias_tensor in biases:
        _write_bias(model, bias_tensor, users, tfl.get_tensor_data(bias_tensor, model.buffers) + delta)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _buffer_users(graph) -> dict[int, int]:
    """How many tensors read each buffer (converters share equal constants)."""
    users = {}
    for tensor in graph.tensors:
        users[tensor.buffer] = users.get(tensor.buffer, 0) + 1
    return users


def _write_bias(model, bias_tensor, users: dict[int, int], values: np.ndarray) -> None:
    """Store ``values`` as the bias; a buffer shared with other tensors gets a copy of its own first."""
    from tensorflow.lite.python import schema_py_generated as schema

    if users[bias_tensor.buffer] > 1:
        users[bias_tensor.buffer] -= 1
        model.buffers.append(schema.BufferT())
        bias_tensor.buffer = len(model.buffers) - 1
    model.buffers[bias_tensor.buffer].data = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)


def relative_error(reference: np.ndarray, quantized: np.ndarray) -> float:
    """Squared error of the quantized outputs over the float outputs' energy: unit-free, so a
    detector's boxes and scores and a classifier's logits are judged alike."""
    reference, quantized = np.asarray(reference, np.float64), np.asarray(quantized, np.float64)
    return float(np.sum((quantized - reference) ** 2) / max(np.sum(reference ** 2), 1e-30))
