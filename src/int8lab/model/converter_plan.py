"""The CPU plan (int8lab.model.targets) on TF's converter route, as ai-edge-quantizer's route has it
(int8lab.model.aeq): calibrate once, then

- the op kinds XNNPACK refuses in int8 (hard-swish, softmax, ...), read from the quantized model's
  own delegation, stay float inside its partitions (TF's ``mlir_quantize`` denylist), both latencies
  measured for the report;
- a classifier's logits chain (the last convolution or fully connected layer to the output) stays
  float with int8 weights when the calibration images say int8 would tie or swap its top scores.

Held-out Keras MobileNetV3-Small of the example: top-1 agreement 96.8% -> 99.4% (ties 7.2% -> 0%),
21 XNNPACK partitions -> 1.
"""

from __future__ import annotations

import warnings

import numpy as np

FLOAT_ROUNDS = 3  # a float op can leave a neighbour refused in turn
LATENCY_RUNS = 20  # interleaved invokes that measure what those float ops change, for the report
WEIGHTED = ("FULLY_CONNECTED", "CONV_2D")
PASS_THROUGH = ("SOFTMAX", "RESHAPE", "SQUEEZE", "LOGISTIC")  # between the logits layer and the output


def cpu_plan(converter, representative_dataset, float_model: bytes, notes: dict | None = None) -> bytes:
    """Called with stdout sent to /dev/null (int8lab.model.convert.tf_convert). ``converter`` set for integer kernels (Optimize.DEFAULT, the representative dataset) ->
    the int8 model with float I/O and the float ops above; what was kept float goes into ``notes``
    under the keys ai-edge-quantizer's route uses (``float_for_xnnpack``, ``float_logits``)."""
    from tensorflow.lite.python import convert as tf_lite_convert

    from int8lab.runtime import delegation

    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # noqa: SLF001 (TF's own debugger does the same)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calibrated = converter.convert()

    def quantized(kinds, nodes=()) -> bytes:  # it prints its options to stdout: the caller sends that away
        return tf_lite_convert.mlir_quantize(calibrated, fully_quantize=False, denylisted_ops=sorted(kinds),
                                             denylisted_nodes=list(nodes))

    anyway = {kind for kind, _ in delegation(float_model).fallback_ops()}  # refused in float too
    kinds: set[str] = set()
    content = quantized(kinds)
    for _ in range(FLOAT_ROUNDS):
        found = {kind for kind, _ in delegation(content).fallback_ops()} - {"QUANTIZE", "DEQUANTIZE"} - anyway - kinds
        if not found:
            break
        kinds |= found
        content = quantized(kinds)
    notes = notes if notes is not None else {}
    if kinds:
        from int8lab.benchmark import bench_latencies
        from int8lab.runtime import LiteRTModel

        before, after = bench_latencies([LiteRTModel(quantized(set())), LiteRTModel(content)], runs=LATENCY_RUNS)
        tensors = float_outputs(content)  # always kept, as on ai-edge-quantizer's route: a deterministic plan
        notes["float_for_xnnpack"] = {"ops": sorted(kinds), "count": len(tensors), "kept": True, "tensors": tensors,
                                      "by": "op kind (TF's mlir_quantize denylist)",
                                      "latency_ms": {"int8": before["p50_ms"], "float_where_refused": after["p50_ms"]}}
    chain = logits_chain(calibrated)
    if chain is None:
        return content
    images = np.concatenate([np.asarray(batch[0], np.float32) for batch in representative_dataset()])
    risk = _tie_risk(float_model, content, images)
    if not risk:
        return content
    content = int8_weights(quantized(kinds, [name for _, name in chain]), [name for _, name in chain])
    notes["float_logits"] = {"ops": [kind for kind, _ in chain], "tensors": float_outputs(content), **risk}
    return content


def logits_chain(content: bytes) -> list[tuple[str, str]] | None:
    """(op kind, output tensor) from the model's one output back to the convolution or fully
    connected layer writing its logits, through softmax and reshapes only; None otherwise."""
    from int8lab.model.ranges import _graph, _op_name

    tfl, model, graph = _graph(content)
    if len(graph.outputs) != 1:
        return None
    writer = {t: op for op in graph.operators for t in op.outputs}
    chain, tensor = [], graph.outputs[0]
    while tensor in writer:
        op = writer[tensor]
        kind = _op_name(model, op)
        chain.append((kind, tfl.get_tensor_name(graph.tensors[tensor])))
        if kind in WEIGHTED:
            return chain
        if kind not in PASS_THROUGH:
            return None
        tensor = op.inputs[0]
    return None


def float_outputs(content: bytes) -> list[str]:
    """The tensors float kernels write (the model's own names), for the sidecar's plan."""
    from int8lab.model.tflite_info import float_op_parts, inspect_tflite

    return [float_op_parts(op)[1] for op in inspect_tflite(content).float_ops]


def int8_weights(content: bytes, tensors: list[str]) -> bytes:
    """The float convolutions and fully connected layers writing ``tensors`` with their weights
    in int8, one symmetric scale per output channel: LiteRT's hybrid kernels (float activations,
    int8 weights), which XNNPACK runs, at a quarter of the float weights' size."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from int8lab.model.ranges import _op_name

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    wanted = set(tensors)
    for op in graph.operators:
        name = graph.tensors[op.outputs[0]].name
        name = name.decode() if isinstance(name, bytes) else name
        if name not in wanted or _op_name(model, op) not in WEIGHTED:
            continue
        weight = graph.tensors[op.inputs[1]]
        buffer = model.buffers[weight.buffer]
        if weight.type != schema.TensorType.FLOAT32 or buffer.data is None or not len(buffer.data):
            continue
        values = np.frombuffer(bytes(bytearray(buffer.data)), np.float32).reshape(weight.shape)
        bound = np.abs(values.reshape(len(values), -1)).max(axis=1)
        scale = np.where(bound > 0, bound / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(values / scale.reshape(-1, *([1] * (values.ndim - 1)))), -127, 127).astype(np.int8)
        buffer.data = np.frombuffer(q.tobytes(), np.uint8)
        weight.type = schema.TensorType.INT8
        weight.quantization = schema.QuantizationParametersT()
        weight.quantization.scale = scale.tolist()
        weight.quantization.zeroPoint = [0] * len(scale)
        weight.quantization.quantizedDimension = 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _tie_risk(float_model: bytes, content: bytes, images: np.ndarray) -> dict | None:
    """ai-edge-quantizer's rule (int8lab.model.ranges.tie_risk) on the calibration images: the
    risk when int8 scores tie or swap at the top, or there are more classes than int8 values."""
    from int8lab.model import ranges
    from int8lab.runtime import LiteRTModel

    reference = LiteRTModel(float_model).predict(images).reshape(len(images), -1)
    output = LiteRTModel(content)
    scores = output.predict(images).reshape(len(images), -1)
    step = _int8_step_before_output(content)
    risk = {**ranges.tie_risk(reference, scores, step), "classes": int(reference.shape[1]), "int8_output_step": step}
    return risk if ranges.logits_at_risk(risk) else None


def _int8_step_before_output(content: bytes) -> float:
    """The scale of the last int8 tensor before the model's float output (one int8 step there)."""
    from int8lab.model.ranges import _graph

    _, _, graph = _graph(content)
    writer = {t: op for op in graph.operators for t in op.outputs}
    tensor = graph.outputs[0]
    while tensor in writer:
        details = graph.tensors[tensor]
        if details.quantization is not None and details.quantization.scale is not None and len(details.quantization.scale):
            return float(details.quantization.scale[0])
        tensor = writer[tensor].inputs[0]
    return 0.0
