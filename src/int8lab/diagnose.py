"""Per-layer quantization error, and float fallback of the worst layers to an accuracy budget.

On the converter path (Keras/SavedModel) both use TensorFlow's QuantizationDebugger: it
calibrates once, measures each quantized tensor against its float value (NumericVerify), and
re-quantizes with some nodes left in float in milliseconds, so the fallback search needs no
recalibration. On the ai-edge-quantizer path (.tflite, PyTorch, ONNX) the per-layer error comes
from running the float and the quantized .tflite side by side, as ai-edge-quantizer's own
validation does: it keeps the float model's tensor names, so each quantized activation has its
float counterpart.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from int8lab.errors import Int8labError, UsageError
from int8lab.model.convert import stdout_to_devnull

# Uniform quantization of a smooth signal has an RMSE of scale/sqrt(12) = 0.29 scale; TF's
# debugging guide treats layers above 0.7 as suspects.
IDEAL_RMSE_OVER_SCALE = 1 / math.sqrt(12)
SUSPECT_RMSE_OVER_SCALE = 0.7


class BudgetUnreachableError(Int8labError):
    """Even the float model misses the accuracy budget: the data or preprocessing is wrong."""


@dataclass(frozen=True)
class LayerError:
    op: str
    tensor: str
    rmse_over_scale: float
    max_abs_error: float
    mse: float
    scale: float
    flagged: bool
    growth: float | None = None  # side by side only: RMSE/scale over the worst of its inputs'

    def as_dict(self) -> dict:
        return asdict(self)


def make_debugger(source, calibration, mode: str = "int8"):
    """A QuantizationDebugger for int8 (``mode`` int8: int8 I/O; int8-float-io: float I/O),
    calibrated once on ``calibration``."""
    if not uses_debugger(source):
        raise UsageError("TF's QuantizationDebugger takes Keras/SavedModel models on the converter "
                         "backend; PyTorch, ONNX and .tflite models go through ai-edge-quantizer")
    import tensorflow as tf

    converter = source.tflite_converter()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    float_io = mode == "int8-float-io"
    if not float_io:
        converter.inference_input_type = converter.inference_output_type = tf.int8
    options = tf.lite.experimental.QuantizationDebugOptions(fully_quantize=not float_io)
    with stdout_to_devnull(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the debugger's own use of tf.lite.Interpreter, and I/O stats
        return tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=calibration,
                                                         debug_options=options)


def uses_debugger(source) -> bool:
    """Whether TF's QuantizationDebugger can quantize this source (the converter path)."""
    return source.kind in ("keras", "saved_model") and getattr(source, "backend", "converter") == "converter"


def layer_errors(debugger) -> list[LayerError]:
    """Every quantized tensor's error against float, worst (by RMSE / scale) first."""
    with warnings.catch_warnings(), stdout_to_devnull():
        warnings.simplefilter("ignore")
        debugger.run()
    rows = []
    for key, stats in debugger.layer_statistics.items():
        tensor, _ = debugger._get_operand_name_and_index(key)  # the name denylisting takes
        index = debugger._numeric_verify_op_details[key]["inputs"][0]
        op = debugger._quant_interpreter._get_op_details(debugger._defining_op[index])["op_name"]
        details = debugger._quant_interpreter._get_tensor_details(index, subgraph_index=0)
        scale = float(details["quantization_parameters"]["scales"][0])
        rows.append((op, tensor, float(stats["max_abs_error"]), float(stats["mean_squared_error"]), scale))
    return _ranked(rows)


def tensor_errors(float_content: bytes, quantized_content: bytes, samples) -> list[LayerError]:
    """Every quantized activation of ``quantized_content`` against the float model's tensor of
    the same name, over ``samples`` (float32 batches of the model's batch size), worst first.

    The error is end to end (it includes what earlier layers let through), so a layer is flagged
    where the error grows: more than 3x the largest error among its own inputs."""
    from int8lab.runtime import LiteRTModel

    reference = LiteRTModel(float_content, keep_tensors=True)
    target = LiteRTModel(quantized_content, keep_tensors=True)
    float_details = {d["name"]: d for d in reference.interpreter.get_tensor_details()}
    tracked = []  # (op, quantized tensor details, its op's input tensor indices)
    for op in target.interpreter._get_ops_details():
        for index in op["outputs"]:
            details = target.interpreter._get_tensor_details(index, 0)
            if details["quantization"][0] and details["name"] in float_details:
                tracked.append((op["op_name"], details, list(op["inputs"])))
    squared, worst, count = np.zeros(len(tracked)), np.zeros(len(tracked)), 0
    for sample in samples:
        reference.invoke(sample)
        target.invoke(sample)
        count += 1
        for k, (_, details, _) in enumerate(tracked):
            error = _real(target, details) - _real(reference, float_details[details["name"]])
            squared[k] += float(np.mean(error ** 2))
            worst[k] = max(worst[k], float(np.abs(error).max()))
    if not count:
        raise UsageError("no calibration sample to compare the layers on")
    rows = [(op, details["name"], worst[k], squared[k] / count, float(details["quantization"][0]))
            for k, (op, details, _) in enumerate(tracked)]
    ratio = {details["index"]: _ratio(row) for row, (_, details, _) in zip(rows, tracked)}
    growth = [ratio[details["index"]] / max(max([ratio[i] for i in inputs if i in ratio], default=IDEAL_RMSE_OVER_SCALE),
                                            1e-9)  # an input with no error at all
              for _, details, inputs in tracked]
    return _ranked(rows, [g > 3 for g in growth], growth)


def _real(model, details: dict) -> np.ndarray:
    """A tensor's real values (dequantized when it is quantized) after the last call."""
    values = model.interpreter.get_tensor(details["index"]).astype(np.float32)
    scale, zero_point = details["quantization"]
    return (values - zero_point) * scale if scale else values


def _ratio(row: tuple[str, str, float, float, float]) -> float:
    _, _, _, mse, scale = row
    return math.sqrt(mse) / scale if scale else 0.0


def _ranked(rows: list[tuple[str, str, float, float, float]], flags: list[bool] | None = None,
            growth: list[float] | None = None) -> list[LayerError]:
    """(op, tensor, max abs error, MSE, scale) rows as LayerErrors, worst first. Unless ``flags``
    says otherwise, a row is flagged above the suspect threshold or 3x the median."""
    ratios = [_ratio(row) for row in rows]
    median = float(np.median(ratios)) if rows else 0.0
    if flags is None:
        flags = [ratio > SUSPECT_RMSE_OVER_SCALE or ratio > 3 * median for ratio in ratios]
    errors = [LayerError(op, tensor, ratio, worst, mse, scale, flag, grown)
              for (op, tensor, worst, mse, scale), ratio, flag, grown
              in zip(rows, ratios, flags, growth or [None] * len(rows))]
    return sorted(errors, key=lambda e: e.rmse_over_scale, reverse=True)


def quantize_with_float(debugger, float_tensors: list[str]) -> bytes:
    """The int8 model with the ops producing ``float_tensors`` left in float."""
    import tensorflow as tf

    with warnings.catch_warnings(), stdout_to_devnull():
        warnings.simplefilter("ignore")  # the debugger re-creates a (deprecated) tf.lite.Interpreter
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            fully_quantize=debugger.options.fully_quantize, denylisted_nodes=list(float_tensors))
        return debugger.get_nondebug_quantized_model()


@dataclass
class FallbackStep:
    float_layers: int
    drop: float  # points of accuracy (or of top-1 agreement) on the ranking set


@dataclass
class FallbackResult:
    content: bytes
    float_tensors: list[str]
    steps: list[FallbackStep]
    met: bool


def measured_order(float_content: bytes, requantize, drop_of, progress=lambda it, n: it) -> list[list[str]]:
    """The layers with weights, each with its activation (the elementwise ops reading its output:
    a SiLU's LOGISTIC and MUL), measured alone in float on the ranking set, the group whose float
    kernels lower the drop the most first. A detector's error is spread over its body, and a
    tensor-error ranking (which grows with depth) picks hundreds of ops that each change little;
    one measurement per layer finds the few that matter."""
    from int8lab.model.detector_head import MOVEMENT_OPS, WEIGHTED_OPS
    from int8lab.model.ranges import _graph, _op_name

    tfl, model, graph = _graph(float_content)
    name = lambda t: tfl.get_tensor_name(graph.tensors[t])  # noqa: E731
    groups = []
    for op in graph.operators:
        if _op_name(model, op) not in WEIGHTED_OPS:
            continue
        readers = [other for other in graph.operators if op.outputs[0] in other.inputs
                   and _op_name(model, other) not in WEIGHTED_OPS | MOVEMENT_OPS]
        groups.append([name(op.outputs[0]), *(name(r.outputs[0]) for r in readers)])
    drops = [drop_of(requantize(group)) for group in progress(groups, len(groups))]
    return [group for _, group in sorted(zip(drops, groups), key=lambda pair: pair[0])]


def fallback_to_budget(requantize, ranked: list[list[str]], drop_of, budget: float,
                       progress=lambda it, n: it) -> FallbackResult:
    """Keep the layers in float in ``ranked`` order (each a group of tensors: a layer and its
    activation), one more at a time, until ``drop_of(model)`` is within ``budget``.
    ``requantize(tensors)`` gives the int8 model with those tensors' ops in float; ``drop_of``
    runs a model on the ranking set."""
    steps, chosen = [], []
    content = requantize([])
    drop = drop_of(content)
    steps.append(FallbackStep(0, drop))
    for layer in progress(ranked, len(ranked)):
        if drop <= budget:
            break
        chosen += layer
        content = requantize(chosen)
        drop = drop_of(content)
        steps.append(FallbackStep(len(steps), drop))
    return FallbackResult(content, chosen, steps, drop <= budget)


PER_LAYER = (f"each layer's own error, given its quantized inputs (TF's QuantizationDebugger); about 0.29 is "
             f"the ideal uniform quantization error; above {SUSPECT_RMSE_OVER_SCALE} or 3x the median is flagged")
END_TO_END = ("the error up to each tensor, float and int8 .tflite run side by side on the calibration images "
              "(as ai-edge-quantizer's validation does); a layer is flagged where the error grows more than 3x "
              "over its inputs'")


def short_name(tensor: str, width: int = 70) -> str:
    """A tensor as a table shows it: the first of its fused names, cut at the front, because
    exporters start every name with the same module path and the layer is named at the end."""
    name = tensor.split(";")[0]
    return name if len(name) <= width else "…" + name[-(width - 1):]


def errors_markdown(rows: list[LayerError], title: str, method: str = PER_LAYER) -> str:
    flagged = [r for r in rows if r.flagged]
    lines = [f"# {title}", "",
             f"{len(rows)} quantized tensors, ranked by RMSE / scale: {method}. {len(flagged)} flagged.", "",
             "| rank | op | tensor | RMSE/scale | max abs error | MSE | scale | flag |", "|---|---|---|---|---|---|---|---|"]
    for rank, r in enumerate(rows, 1):
        lines.append(f"| {rank} | {r.op} | `{short_name(r.tensor)}` | {r.rmse_over_scale:.3f} | {r.max_abs_error:.4g} | "
                     f"{r.mse:.3g} | {r.scale:.4g} | {'**yes**' if r.flagged else ''} |")
    return "\n".join(lines) + "\n"


def node_data(rows: list[LayerError], title: str, model_tensors: set[str]) -> dict:
    """Model Explorer's node-data overlay (its GraphNodeData JSON): each quantized layer's
    RMSE/scale on the node that writes the tensor, coloured from green (the least) to red. Keys
    are the tensor names of the model shown (TF's debugger drops an output's ":0")."""
    def key(tensor: str) -> str:
        return tensor if tensor in model_tensors else next(
            (name for name in sorted(model_tensors) if name.startswith(tensor)), tensor)

    return {"name": title, "results": {key(r.tensor): {"value": round(r.rmse_over_scale, 6)} for r in rows},
            "gradient": [{"stop": 0, "bgColor": "#d9f0d3"}, {"stop": 0.5, "bgColor": "#fee08b"},
                         {"stop": 1, "bgColor": "#d73027"}]}


def errors_csv(rows: list[LayerError]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(LayerError.__dataclass_fields__))
    writer.writeheader()
    writer.writerows(r.as_dict() for r in rows)
    return buffer.getvalue()


@dataclass
class Recovery:
    """What ``--max-drop`` did: the model it kept, and the evidence."""

    content: bytes
    float_tensors: list[str]
    steps: list[FallbackStep]
    ranked: list[LayerError]
    budget: float
    metric: str  # what the drop is measured in: "accuracy", "top-1 agreement", "mAP50 against the float model"
    ranking_images: int
    method: str = PER_LAYER  # how ``ranked`` was measured (PER_LAYER or END_TO_END)
    order: str = "worst RMSE/scale first"  # how the layers were taken back to float

    @property
    def needed(self) -> bool:
        return self.steps[0].drop > self.budget

    def as_dict(self) -> dict:
        return {"budget_points": self.budget, "metric": self.metric, "ranking_images": self.ranking_images,
                "drop_before": self.steps[0].drop, "drop_after": self.steps[-1].drop,
                "float_tensors": self.float_tensors,
                "order": self.order,
                "steps": [asdict(s) for s in self.steps]}


def budgets(source, ranking, task: dict, spec, progress, max_drop: float | None, min_agreement: float | None):
    """(metric words, drop_of, budget) for the fallback search: ``--max-drop`` in the task's own
    points, ``--min-agreement`` as top-1 disagreement points (classifiers), or both as the larger
    excess over its own budget (budget 0)."""
    from int8lab.tasks.registry import get_task

    scorer = get_task(task["name"])
    if min_agreement is None:
        return (*scorer.drop_function(source, ranking, task, spec, progress), max_drop)
    if task["name"] != "classify":
        raise UsageError("--min-agreement is a classifier's top-1 agreement; a detector's budget is --max-drop "
                         "(mAP50-95 against the float model)")
    if not 0 < min_agreement <= 1:
        raise UsageError(f"--min-agreement is a fraction of the images, in (0, 1], got {min_agreement}")
    agreement_budget = 100 * (1 - min_agreement)
    words, disagreement = scorer.drop_function(source, ranking, task, spec, progress, agreement=True)
    if max_drop is None:
        return words, disagreement, agreement_budget
    other_words, drop = scorer.drop_function(source, ranking, task, spec, progress)

    def excess(content: bytes) -> float:
        return max(drop(content) - max_drop, disagreement(content) - agreement_budget)

    return f"the larger excess over the {other_words} and {words} budgets", excess, 0.0


def rank_layers(source, calibration, head_score=None, mode: str = "int8"):
    """The layers of int8 ranked by their error, a ``requantize(tensors)`` that leaves those
    tensors' ops in float, and how the error was measured (PER_LAYER or END_TO_END): TF's
    QuantizationDebugger on the converter path, float and int8 .tflite side by side on
    ai-edge-quantizer's. Both calibrate once on ``calibration``; a detector's ``head_score``
    starts from the decode tail int8lab's default keeps in float (int8lab.model.aeq)."""
    from functools import partial

    from int8lab.model.aeq import Calibrated
    from int8lab.model.convert import convert

    if uses_debugger(source):
        debugger = make_debugger(source, calibration, mode)
        return layer_errors(debugger), partial(quantize_with_float, debugger), PER_LAYER
    calibrated = Calibrated(convert(source, "none"), mode, calibration, getattr(source, "range_estimator", "minmax"),
                            getattr(source, "bias_correction", True), head_score)
    samples = (sample[None] for batch in calibration.generate_batches() for sample in batch)
    return tensor_errors(calibrated.content, calibrated.quantize(), samples), calibrated.quantize, END_TO_END


def recover_accuracy(source, calibration, ranking, budget: float | None, progress: bool = False,
                     task: dict | None = None, spec=None, int8_source=None, mode: str = "int8",
                     min_agreement: float | None = None) -> Recovery:
    """Full int8, then layers back to float (worst first) until the drop on ``ranking`` (an
    EvalSet of calibration-split images, never the held-out test split) is within ``budget``,
    the drop as the task measures it against ``source``, the float reference; with a classifier's
    ``min_agreement`` (a fraction) its top-1 agreement holds too (both: the larger excess over its
    budget must reach 0). The layers are those of ``int8_source`` (what the integer modes convert;
    ``source`` by default)."""
    from int8lab.model.convert import convert
    from int8lab.progress import track
    from int8lab.tasks.registry import get_task
    from int8lab.tasks.detect import head_scorer

    if budget is not None and budget < 0:
        raise UsageError(f"--max-drop is a loss in points and cannot be negative, got {budget}")
    task = task or {"name": "classify"}
    metric, drop_of, budget = budgets(source, ranking, task, spec, progress, budget, min_agreement)
    source = int8_source or source
    ranked, requantize, method = rank_layers(source, calibration, head_scorer(task), mode)
    if task["name"] == "detect" and drop_of(requantize([])) <= budget:
        order, how = [], "none needed: full int8 meets the budget (no layer measured)"
    elif task["name"] == "detect":  # one measurement per layer: only when full int8 misses the budget
        order = measured_order(convert(source, "none"), requantize, drop_of,
                               lambda it, n: track(it, n, "layer sensitivity", progress))
        how = "largest measured gain first (each layer with weights and its activation alone in float)"
    elif method == PER_LAYER:
        order, how = [[row.tensor] for row in ranked], "worst RMSE/scale first"
    else:  # end-to-end errors grow with depth: there, revert first where the error grows the most
        order = [[row.tensor] for row in sorted(ranked, key=lambda r: -r.growth)]
        how = "largest error growth over the layer's inputs first"
    result = fallback_to_budget(requantize, order, drop_of, budget,
                                lambda it, n: track(it, n, "float fallback", progress))
    if not result.met:
        float_drop = drop_of(convert(source, "none"))
        if float_drop > budget:
            raise BudgetUnreachableError(
                f"even the fp32 .tflite loses {float_drop:.2f} points of {metric} on the ranking set "
                f"(budget {budget}): the data, the labels or the preprocessing is wrong, not the quantization")
        raise BudgetUnreachableError(
            f"with all {len(order)} candidate layers in float the drop is still {result.steps[-1].drop:.2f} "
            f"points (budget {budget}); only the int8 input/output remain: try int8-float-io")
    return Recovery(result.content, result.float_tensors, result.steps, ranked, budget, metric,
                    len(ranking.tensors), method, how)
