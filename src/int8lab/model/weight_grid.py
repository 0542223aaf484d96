"""Weights that already sit on an int8 grid keep it exactly.

A model exported from quantization-aware training, or rebuilt in float from an int8 model (each
weight (q - zero point) x scale), has weights that take at most 256 values a step apart. The
quantizer's symmetric per-channel scale (largest |w| / 127) is another grid: every weight is
rounded a second time (on a real COCO YOLOv8n rebuilt this way, keeping the grid takes mAP50-95
against the float model from 0.917 to 0.940). Where a channel's weights are whole multiples of a step s with at most 127
of them either side of 0, scale s stores them exactly, and its bias is re-quantized to the
matching scale (input scale x s). Channels that do not fit keep the quantizer's scale; weights of
an ordinary float model fit nowhere and are left as they are. (ai-edge-quantizer's
DEQUANTIZED_WEIGHT_RECOVERY does this all or nothing, raises on any channel off the grid and
clips channels past 127 steps, which an asymmetric source grid has in most layers.)
"""

from __future__ import annotations

import numpy as np

MAX_LEVELS = 256  # a grid of int8 size: more distinct values than this is not one
TOLERANCE = 1e-3  # |w / s - round(w / s)| allowed, in steps (float32 rounding of the rebuild)


def smallest_step(values: np.ndarray) -> float | None:
    """The smallest gap between distinct values, when there are at most MAX_LEVELS of them."""
    levels = np.unique(values.astype(np.float64))
    if len(levels) < 2 or len(levels) > MAX_LEVELS:
        return None
    return float(np.min(np.diff(levels)))


def fits(values: np.ndarray, step: float | None) -> bool:
    """Every value a whole multiple of ``step``, within 127 steps of 0."""
    if not step:
        return False
    multiples = values.astype(np.float64) / step
    return bool(np.max(np.abs(multiples - np.round(multiples))) <= TOLERANCE
                and np.max(np.abs(np.round(multiples))) <= 127)


def grid_step(values: np.ndarray, tensor_step: float | None = None) -> float | None:
    """The step a channel's weights sit on: its tensor's (a per-tensor grid, which a channel with
    few weights does not show by itself), else its own; None when neither fits."""
    step = next((step for step in (tensor_step, smallest_step(values)) if fits(values, step)), None)
    if step is None:
        return None
    multiples = np.round(values.astype(np.float64) / step)
    return float(values.astype(np.float64) @ multiples / (multiples @ multiples))  # least squares: no gap's rounding


def keep_weight_grids(float_content: bytes, quantized_content: bytes) -> tuple[bytes, dict]:
    """``quantized_content`` (quantized from ``float_content``) with the int8 weights of every
    channel on a grid stored on that grid, and its int32/int64 bias re-quantized to match; and
    {"layers", "channels", "of_channels"} counted."""
    from tensorflow.lite.tools import flatbuffer_utils

    from int8lab.model.bias_correction import _buffer_users, _layers
    from int8lab.model.ranges import _WEIGHT_AXIS

    tfl, model, graph, layers = _layers(float_content)
    qtfl, qmodel, qgraph, qlayers = _layers(quantized_content)
    float_ops = {tfl.get_tensor_name(graph.tensors[op.outputs[0]]): op for _, op in layers}
    users = _buffer_users(qgraph)
    counts = {"layers": 0, "channels": 0, "of_channels": 0}
    for kind, qop in qlayers:
        op = float_ops.get(qtfl.get_tensor_name(qgraph.tensors[qop.outputs[0]]))
        weights_tensor, bias_tensor = qgraph.tensors[qop.inputs[1]], qgraph.tensors[qop.inputs[2]]
        input_q = qgraph.tensors[qop.inputs[0]].quantization
        q = weights_tensor.quantization
        if op is None or q is None or q.scale is None or input_q is None or input_q.scale is None:
            continue
        weights = tfl.get_tensor_data(graph.tensors[op.inputs[1]], model.buffers)
        bias = tfl.get_tensor_data(graph.tensors[op.inputs[2]], model.buffers)
        stored = qtfl.get_tensor_data(weights_tensor, qmodel.buffers)
        stored_bias = qtfl.get_tensor_data(bias_tensor, qmodel.buffers)
        axis = _WEIGHT_AXIS[kind]
        if (weights is None or bias is None or stored is None or stored_bias is None or stored.dtype != np.int8
                or stored.shape != weights.shape or len(q.scale) != weights.shape[axis] or q.quantizedDimension != axis
                or users[weights_tensor.buffer] > 1 or users[bias_tensor.buffer] > 1
                or not np.issubdtype(stored_bias.dtype, np.integer) or len(input_q.scale) != 1):
            continue
        channels = np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1)
        new = np.moveaxis(stored, axis, 0).reshape(channels.shape).copy()
        scales = np.asarray(q.scale, np.float64).copy()
        new_bias = stored_bias.copy()
        snapped, tensor_step = 0, smallest_step(weights)
        for c, row in enumerate(channels):
            step = grid_step(row, tensor_step)
            if step is None:
                continue
            new[c] = np.round(row / step).astype(np.int8)
            scales[c] = step
            new_bias[c] = np.round(float(bias[c]) / (float(input_q.scale[0]) * step))
            snapped += 1
        counts["of_channels"] += len(channels)
        if not snapped:
            continue
        counts["layers"] += 1
        counts["channels"] += snapped
        q.scale = scales.astype(np.float32).tolist()
        bias_q = bias_tensor.quantization
        bias_q.scale = (scales * float(input_q.scale[0])).astype(np.float32).tolist()
        restored = np.moveaxis(new.reshape(np.moveaxis(stored, axis, 0).shape), 0, axis)
        qmodel.buffers[weights_tensor.buffer].data = np.frombuffer(np.ascontiguousarray(restored).tobytes(), np.uint8)
        qmodel.buffers[bias_tensor.buffer].data = np.frombuffer(new_bias.astype(stored_bias.dtype).tobytes(), np.uint8)
    if not counts["channels"]:
        return quantized_content, counts
    return bytes(flatbuffer_utils.convert_object_to_bytearray(qmodel)), counts
