"""What a .tflite really holds: I/O types and quantization, an op histogram, leftover float ops.

The converter can silently keep float kernels; this is how int8lab checks every result.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")
# Ops that read only a tensor's shape, never its values: a float input costs them nothing (a
# flattening layer's SHAPE behind ai-edge-quantizer's DEQUANTIZE, say).
SHAPE_ONLY_OPS = ("SHAPE", "RANK")
FLOAT_TYPES = (np.float32, np.float16, np.float64)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: list[int]
    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class TFLiteInfo:
    size_bytes: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_histogram: dict[str, int]
    float_ops: list[str]  # "OPNAME (tensor)" for every op computing on a float tensor, by the float tensor it writes
    parameter_count: int = 0  # elements of the constant tensors (weights and biases)

    @property
    def fully_integer(self) -> bool:
        return not self.float_ops

    def float_op_summary(self) -> str:
        return float_op_summary(self.float_ops)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["fully_integer"] = self.fully_integer
        return data


def float_op_parts(entry: str) -> tuple[str, str]:
    """(op kind, the float tensor it writes) of a ``float_ops`` entry, "KIND (tensor)"."""
    kind, tensor = entry.split(" (", 1)
    return kind, tensor[:-1]


def float_op_summary(float_ops: list[str]) -> str:
    """``CONV_2D x5, SOFTMAX x1``: which kernels still run in float (``float_ops`` as TFLiteInfo has them)."""
    counts = Counter(float_op_parts(entry)[0] for entry in float_ops)
    return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items()))


def _tensor_info(detail: dict) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(detail["name"], [int(d) for d in detail["shape"]],
                      np.dtype(detail["dtype"]).name, float(scale), int(zero_point))


def inspect_tflite(model_content: bytes) -> TFLiteInfo:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    histogram: Counter[str] = Counter()
    float_ops = []
    ops = interpreter._get_ops_details()  # the only API that lists ops and their tensors
    for op in ops:
        histogram[op["op_name"]] += 1
        if op["op_name"] in BOUNDARY_OPS + SHAPE_ONLY_OPS:
            continue
        touched = [tensors[i] for i in (*op["inputs"], *op["outputs"]) if i >= 0 and i in tensors]
        floats = [t for t in touched if np.dtype(t["dtype"]).type in FLOAT_TYPES]
        if floats:  # named by the tensor it writes, where that is float
            written = [tensors[i] for i in op["outputs"] if i in tensors and tensors[i] in floats]
            float_ops.append(f"{op['op_name']} ({(written or floats)[0]['name']})")
    return TFLiteInfo(
        size_bytes=len(model_content),
        inputs=[_tensor_info(d) for d in interpreter.get_input_details()],
        outputs=[_tensor_info(d) for d in interpreter.get_output_details()],
        op_histogram=dict(sorted(histogram.items())),
        float_ops=float_ops,
        parameter_count=_parameter_count(interpreter, ops, tensors),
    )


def _parameter_count(interpreter, ops, tensors) -> int:
    """Elements of the tensors that ops read but no op writes and the caller does not feed."""
    produced = {i for op in ops for i in op["outputs"]}
    fed = {d["index"] for d in interpreter.get_input_details()}
    constants = {i for op in ops for i in op["inputs"] if i >= 0 and i not in produced | fed}
    return int(sum(np.prod(tensors[i]["shape"]) for i in constants if i in tensors))
