"""Run a .tflite with the LiteRT interpreter: float in, float out, whatever the model's I/O types."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from int8lab.errors import UsageError


class LiteRTModel:
    """Quantizes inputs and dequantizes outputs with the model's own scale and zero point."""

    def __init__(self, model: bytes | str | Path, threads: int | None = None, keep_tensors: bool = False):
        """``keep_tensors`` keeps every intermediate tensor readable after a call (no XNNPACK
        delegate, which fuses them away): slower, for per-layer comparison."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        content = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.size_bytes = len(content)
        self.threads = threads
        extra = {}
        if keep_tensors:
            extra = {"experimental_preserve_all_tensors": True,
                     "experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        try:
            self.interpreter = Interpreter(model_content=content, num_threads=threads, **extra)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            where = "" if isinstance(model, bytes) else f"{model} "
            raise UsageError(f"{where}is not a .tflite model LiteRT can run: {str(exc).strip().splitlines()[0]}") \
                from None
        self._read_io()

    @classmethod
    def wrapping(cls, interpreter) -> "LiteRTModel":
        """The same calls on an interpreter made elsewhere (ai-edge-quantizer's calibration one)."""
        model = cls.__new__(cls)
        model.interpreter, model.size_bytes, model.threads = interpreter, None, None
        model._read_io()
        return model

    def _read_io(self) -> None:
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        self.output = joined_output(self.outputs)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"])

    def quantize_input(self, values: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        if dtype.kind == "f":
            return values.astype(dtype, copy=False)
        scale, zero_point = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)

    def invoke(self, sample_batch: np.ndarray) -> np.ndarray:
        """One call with a batch of the model's own batch size (usually 1)."""
        self.interpreter.set_tensor(self.input["index"], self.quantize_input(sample_batch))
        self.interpreter.invoke()
        if self.output is self.outputs[0]:
            return dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)
        return np.concatenate([dequantize(self.interpreter.get_tensor(d["index"]), d) for d in self.outputs], axis=-1)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Float outputs for a float32 batch of any size (run one model-batch at a time)."""
        step = self.input_shape[0] or 1
        return np.concatenate([self.invoke(batch[i:i + step]) for i in range(0, len(batch), step)])


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return values.astype(np.float32, copy=False)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def joined_output(outputs: list[dict]) -> dict:
    """The output int8lab reads: the only one, or several [1, N, k] outputs (a detector's boxes
    and scores, as MediaPipe's ObjectDetector takes them) read as one [1, N, sum of k] along the
    last axis, in graph order; otherwise the first."""
    shapes = [tuple(int(d) for d in o["shape"]) for o in outputs]
    if len(outputs) == 1 or any(len(s) != 3 or s[:2] != shapes[0][:2] for s in shapes):
        return outputs[0]
    return {**outputs[0], "name": "+".join(o["name"] for o in outputs),
            "shape": np.array([*shapes[0][:2], sum(s[2] for s in shapes)], np.int32)}


@dataclass(frozen=True)
class Delegation:
    """How LiteRT's default delegate (XNNPACK) takes a model: what runs fast and what falls back
    to LiteRT's built-in kernels (int16 tensors, int8 SOFTMAX or HARD_SWISH, RESIZE_NEAREST_NEIGHBOR
    on this release), which is where an int8 model loses its speed."""

    partitions: int  # XNNPACK subgraphs (each boundary costs a hand-over)
    delegated: int  # ops XNNPACK runs
    fallback: tuple[str, ...]  # "OP (tensor it writes)" of each op on the built-in kernels

    def describe(self, each_op: bool = False) -> str:
        """One line; the ops on the built-in kernels counted by kind, or ``each_op`` by the tensor each writes."""
        rest = ", ".join(self.fallback) if each_op else self._fallback_kinds()
        return (f"XNNPACK runs {self.delegated} of {self.delegated + len(self.fallback)} ops in "
                f"{self.partitions} partition(s)" + (f"; on the built-in kernels: {rest}" if rest else ""))

    def summary(self) -> str:
        """For a table cell: "71 of 73 ops, 1 partition(s); built-in: QUANTIZE x1"."""
        rest = self._fallback_kinds()
        return (f"{self.delegated} of {self.delegated + len(self.fallback)} ops, {self.partitions} partition(s)"
                + (f"; built-in: {rest}" if rest else ""))

    def _fallback_kinds(self) -> str:
        """"QUANTIZE x1, SOFTMAX x1": the ops on the built-in kernels counted by kind."""
        from int8lab.model.tflite_info import float_op_summary

        return float_op_summary(self.fallback)

    def fallback_ops(self) -> list[tuple[str, str]]:
        """(op kind, tensor it writes) of each op on the built-in kernels."""
        from int8lab.model.tflite_info import float_op_parts

        return [float_op_parts(entry) for entry in self.fallback]

    def as_dict(self) -> dict:
        return {"partitions": self.partitions, "delegated": self.delegated, "fallback": list(self.fallback)}

    @classmethod
    def from_dict(cls, data: dict) -> "Delegation":
        return cls(data["partitions"], data["delegated"], tuple(data["fallback"]))


def delegation(content: bytes, threads: int | None = None) -> Delegation:
    """Which ops XNNPACK takes: with node fusion off each op it takes becomes a DELEGATE node
    writing the same tensors; with it on, the DELEGATE nodes are its partitions."""
    from ai_edge_litert.interpreter import Interpreter

    def allocated(fuse: bool):
        interpreter = Interpreter(model_content=content, num_threads=threads,
                                  experimental_disable_delegate_node_fusion=not fuse)
        interpreter.allocate_tensors()
        return interpreter

    unfused = allocated(fuse=False)
    separate = unfused._get_ops_details()
    taken = {tuple(op["outputs"]) for op in separate if op["op_name"] == "DELEGATE"}
    names = {d["index"]: d["name"] for d in unfused.get_tensor_details()}
    own = [op for op in separate if op["op_name"] != "DELEGATE"]
    fallback = tuple(f"{op['op_name']} ({names.get(int(op['outputs'][0]), '?')})" for op in own
                     if tuple(op["outputs"]) not in taken)
    partitions = sum(op["op_name"] == "DELEGATE" for op in allocated(fuse=True)._get_ops_details())
    return Delegation(partitions, len(own) - len(fallback), fallback)
