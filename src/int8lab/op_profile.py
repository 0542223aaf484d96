"""Where a .tflite model's time goes, op by op, on this CPU.

LiteRT's Python interpreter has no op profiler, so each op is cut out into a model of its own (its
inputs, its constants, its outputs), fed the values it meets in the whole model on a real sample,
and timed under the same delegate (XNNPACK when it takes the op, LiteRT's built-in kernels when
not). The sum misses only the hand-over between XNNPACK's partitions; what each op costs, and
which kernel runs it, is what the profile shows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

RUNS = 7  # invokes per op after one warm-up; the median is kept
SUBGRAPH_OPS = ("WHILE", "IF", "CALL_ONCE", "STABLEHLO_COMPOSITE")  # ops that call other subgraphs: not cut out


@dataclass(frozen=True)
class OpTime:
    index: int
    kind: str
    tensor: str  # the tensor it writes (the model's own name)
    ms: float | None  # median milliseconds; None when the op could not run alone
    xnnpack: bool  # whether XNNPACK took it

    def as_dict(self) -> dict:
        return asdict(self)


def op_profile(content: bytes, sample: np.ndarray, threads: int | None = None) -> list[OpTime]:
    """Each op of ``content`` timed alone on what ``sample`` (one float input, as LiteRTModel
    takes it) gives it in the whole model, in graph order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.tools import flatbuffer_utils

    from int8lab.model.ranges import _op_name
    from int8lab.runtime import LiteRTModel

    whole = Interpreter(model_content=content, experimental_preserve_all_tensors=True,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    whole.allocate_tensors()
    runner = LiteRTModel.wrapping(whole)
    runner.invoke(sample)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    times = []
    for index, op in enumerate(graph.operators):
        kind = _op_name(model, op)
        name = graph.tensors[op.outputs[0]].name
        name = name.decode() if isinstance(name, bytes) else name
        ms, xnnpack = (None, False) if kind in SUBGRAPH_OPS else _time_alone(model, op, whole, threads)
        times.append(OpTime(index, kind, name, ms, xnnpack))
    return times


def _time_alone(model, op, whole, threads) -> tuple[float | None, bool]:
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    graph = model.subgraphs[0]
    constant = {t for t in op.inputs if t >= 0 and _has_data(model, graph.tensors[t])}
    feeds = [t for t in op.inputs if t >= 0 and t not in constant]
    try:
        single = _single_op_model(model, op, feeds, constant)
        interpreter = Interpreter(model_content=bytes(flatbuffer_utils.convert_object_to_bytearray(single)),
                                  num_threads=threads)
        interpreter.allocate_tensors()
        for detail, tensor in zip(interpreter.get_input_details(), feeds):
            interpreter.set_tensor(detail["index"], whole.get_tensor(tensor))
        xnnpack = any(o["op_name"] == "DELEGATE" for o in interpreter._get_ops_details())
        interpreter.invoke()
        spent = []
        for _ in range(RUNS):
            start = time.perf_counter()
            interpreter.invoke()
            spent.append((time.perf_counter() - start) * 1000)
    except (RuntimeError, ValueError):  # an op that cannot run alone (a state it shares, say)
        return None, False
    return float(np.median(spent)), xnnpack


def _has_data(model, tensor) -> bool:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def _single_op_model(model, op, feeds: list[int], constant: set[int]):
    """A model of ``op`` alone: its non-constant inputs become the model's inputs."""
    import copy

    from tensorflow.lite.python import schema_py_generated as schema

    graph = model.subgraphs[0]
    single = schema.ModelT()
    single.version, single.operatorCodes = model.version, model.operatorCodes
    single.buffers = [schema.BufferT()]
    remap: dict[int, int] = {}
    tensors = []
    for t in [*op.inputs, *op.outputs]:
        if t < 0 or t in remap:
            continue
        tensor = copy.copy(graph.tensors[t])
        if t in constant:
            single.buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(single.buffers) - 1
        else:
            single.buffers.append(schema.BufferT())
            tensor.buffer = len(single.buffers) - 1
        remap[t] = len(tensors)
        tensors.append(tensor)
    alone = copy.copy(op)
    alone.inputs = [remap[t] if t >= 0 else -1 for t in op.inputs]
    alone.outputs = [remap[t] for t in op.outputs]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = tensors, [alone]
    subgraph.inputs, subgraph.outputs = [remap[t] for t in feeds], list(alone.outputs)
    single.subgraphs = [subgraph]
    return single


def top_ops(times: list[OpTime], n: int = 10) -> list[dict]:
    """The ``n`` op kinds that take the most time, per kernel (XNNPACK or built-in): count, total ms,
    share of the measured total."""
    measured = [t for t in times if t.ms is not None]
    total = sum(t.ms for t in measured) or 1.0
    groups: dict[tuple[str, bool], list[float]] = {}
    for t in measured:
        groups.setdefault((t.kind, t.xnnpack), []).append(t.ms)
    rows = [{"kind": kind, "kernel": "XNNPACK" if xnnpack else "built-in", "ops": len(ms), "ms": sum(ms),
             "share": sum(ms) / total} for (kind, xnnpack), ms in groups.items()]
    return sorted(rows, key=lambda r: -r["ms"])[:n]


def profile_summary(times: list[OpTime]) -> dict:
    """What the report and ``bench`` keep: totals per kernel and the top op kinds."""
    measured = [t for t in times if t.ms is not None]
    return {"ops": len(times), "measured": len(measured),
            "total_ms": sum(t.ms for t in measured),
            "xnnpack_ms": sum(t.ms for t in measured if t.xnnpack),
            "builtin_ms": sum(t.ms for t in measured if not t.xnnpack),
            "top": top_ops(times)}
