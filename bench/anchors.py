"""Another tool's int8 on the same model and images, run in the same process as int8lab's: the
baseline every bench prints its ratios against (ONNX Runtime's quantize_static)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OrtModel:
    """An ONNX model in ONNX Runtime, batch by batch (what the evaluations call)."""

    def __init__(self, path: Path):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name
        self.size_bytes = path.stat().st_size

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.concatenate([self.session.run(None, {self.name: batch[i:i + 1]})[0] for i in range(len(batch))])


def with_node_names(model: Path, out: Path) -> Path:
    """The model itself, or a copy whose unnamed nodes are named ``<op type>_<index>``: ONNX Runtime's
    ``nodes_to_exclude`` picks nodes by name (Darknet converters write none, and an empty name
    would exclude every unnamed node)."""
    import onnx

    proto = onnx.load(str(model))
    if all(node.name for node in proto.graph.node):
        return model
    for k, node in enumerate(proto.graph.node):
        node.name = node.name or f"{node.op_type}_{k}"
    onnx.save(proto, str(out))
    return out


def decode_tail(model: Path) -> list[str]:
    """Names of the ONNX nodes from the output back to, and including, the last convolutions: a
    detector's decode tail with its output convolutions, what int8lab's default keeps in float
    (as int8lab.model.detector_head finds it: the DFL expectation, a convolution over a softmax,
    is decode; a Shape reads only its input's shape)."""
    import onnx

    graph = onnx.load(str(model)).graph
    producer = {output: node for node in graph.node for output in node.output}
    tail, frontier = {}, [graph.output[0].name]
    while frontier:
        node = producer.get(frontier.pop())
        if node is None or node.name in tail:
            continue
        tail[node.name] = node
        feeds_softmax = node.op_type == "Conv" and getattr(producer.get(node.input[0]), "op_type", "") == "Softmax"
        if node.op_type not in ("Conv", "Shape") or feeds_softmax:
            frontier.extend(node.input)
    return list(tail)


def ort_static_int8(model: Path, batches, out: Path, method: str = "MinMax", max_images: int | None = None,
                    exclude: list[str] | None = None) -> Path:
    """ONNX Runtime's quantize_static: QDQ, per-channel int8 weights, int8 activations whose
    ranges come from ``method`` (MinMax, Percentile or Entropy) over ``batches`` (float32, the
    ONNX model's layout), the first ``max_images`` of them when given. MinMax folds its ranges
    every 16 images; the histogram methods hold every intermediate output of every image in RAM
    (about 240 MB an image for a 640-px YOLOv8n), hence ``max_images``. ``exclude``: nodes left in
    float (``nodes_to_exclude``)."""
    from itertools import islice

    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            name = OrtModel(model).name
            self.batches = iter([{name: batch} for batch in islice(batches, max_images)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(opset_at_least(model, out.with_suffix(".opset13.onnx"))), str(out), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=True, calibrate_method=CalibrationMethod[method],
                    nodes_to_exclude=exclude or [],
                    extra_options={"CalibMaxIntermediateOutputs": 16} if method == "MinMax" else {})
    return out


def opset_at_least(model: Path, out: Path, opset: int = 13) -> Path:
    """The model itself, or a copy converted to ``opset``: per-channel QDQ needs the axis of
    DequantizeLinear (opset 13), and quantize_static only lifts older models to 11."""
    import onnx
    from onnx import version_converter

    proto = onnx.load(str(model))
    current = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if current >= opset:
        return model
    onnx.save(version_converter.convert_version(proto, opset), str(out))
    return out
