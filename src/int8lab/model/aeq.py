"""Float .tflite -> quantized .tflite with ai-edge-quantizer (the path for models with no Keras
graph left: a float .tflite from any exporter).

Its static recipes give the model an integer interface (int8 or int16 I/O); ``int8-float-io``
leaves the model's input and output in float (one QUANTIZE and one DEQUANTIZE at the edges, all
kernels integer). It has no uint8-I/O variant and no float16 recipe, so those modes need the
Keras/SavedModel source and the TF converter.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings

import numpy as np

from int8lab.errors import Int8labError, UsageError
from int8lab.progress import phase, steps

AEQ_MODES = ("none", "dynamic", "int8", "int8-float-io", "int16x8")


class QuantizerError(Int8labError):
    """ai-edge-quantizer refused the model."""


WEIGHTED_OPERATIONS = ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D_TRANSPOSE", "FULLY_CONNECTED")
FLOAT_ROUNDS = 3  # int8-float-io: rounds of leaving what XNNPACK refused in int8 in float
LATENCY_RUNS = 20  # interleaved invokes that measure what those float ops change, for the report


def _recipe(mode: str, estimator: str):
    """min/max ranges everywhere; another estimator on the weighted ops only: OCTAV takes
    symmetric tensors alone, and a constant operand of an elementwise op (a detector's anchor
    grid) is quantized as an asymmetric activation."""
    from ai_edge_quantizer import recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    from int8lab.model.options import RANGE_ESTIMATORS

    build = {"dynamic": recipe.dynamic_wi8_afp32, "int8": recipe.static_wi8_ai8, "int8-float-io": recipe.static_wi8_ai8,
             "int16x8": recipe.static_wi8_ai16}[mode]
    entries = build(AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    # LiteRT's integer BATCH_MATMUL takes one scale per operand: with a per-channel constant
    # (YOLO-World's text embeddings) it returns zeros. Its constant operand is quantized per tensor.
    per_tensor = {**entries[0]["op_config"],
                  "weight_tensor_config": {**entries[0]["op_config"]["weight_tensor_config"], "granularity": "TENSORWISE"}}
    entries = [*entries, {**entries[0], "operation": TFLOperationName.BATCH_MATMUL, "op_config": per_tensor}]
    if estimator == "minmax":
        return entries
    key = AlgorithmName[RANGE_ESTIMATORS[estimator]]
    return [*entries, *({**entries[0], "operation": TFLOperationName[op], "algorithm_key": key}
                        for op in WEIGHTED_OPERATIONS)]


def quantize_tflite(content: bytes, mode: str, representative_dataset=None, estimator: str = "minmax",
                    notes: dict | None = None, bias_correction: bool = True, head_score=None) -> bytes:
    """Quantize a float .tflite; calibrated modes take int8lab's ``[batch]`` batches.
    ``estimator`` picks the range algorithm (min/max, or OCTAV's clipping for weights); what the
    range and bias corrections changed (int8lab.model.ranges, int8lab.model.bias_correction) is
    written into ``notes``. ``head_score(float outputs, quantized outputs)`` (a detector's: higher
    is closer) chooses which of its decode tail stays in float (int8lab.model.detector_head)."""
    if mode not in AEQ_MODES:
        raise UsageError(f"mode {mode} is not available for a .tflite source (ai-edge-quantizer "
                         f"offers {', '.join(AEQ_MODES)}); convert from the Keras/SavedModel model")
    if mode == "none":
        return content
    if mode == "dynamic":
        with _reasons(mode), _quiet():
            qt = _quantizer(content, mode, estimator)
            return bytes(qt.quantize(None, enable_progress_report=False).quantized_model)
    if representative_dataset is None:
        raise UsageError(f"mode {mode} needs calibration data (--data)")
    calibrated = Calibrated(content, mode, representative_dataset, estimator, bias_correction, head_score)
    if notes is not None:
        notes.update(calibrated.notes.as_dict())
    return calibrated.quantize()


def ops_without_integer_recipe(content: bytes) -> list[str]:
    """"KIND (tensor)" entries, as ``TFLiteInfo.float_ops`` names them, for each op of the float
    ``content`` that no integer plan can reach: its kind has neither an ai-edge-quantizer min/max
    recipe nor an int8lab rewrite to one (int8lab.model.op_rewrite) or integer island
    (int8lab.model.int8_kernels), and it computes on float activations. Read before calibration,
    so that a request for every kernel integer is refused in seconds (YOLO-World's
    L2_NORMALIZATION was refused after minutes of calibration and head search)."""
    from ai_edge_quantizer import algorithm_manager
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    from int8lab.model.int8_kernels import INTEGER_KERNEL_VERSION
    from int8lab.model.op_rewrite import quantizable_ops
    from int8lab.model.ranges import _graph, _op_name
    from int8lab.model.tflite_info import BOUNDARY_OPS, SHAPE_ONLY_OPS

    recipes = algorithm_manager.get_supported_ops(algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    integer = {tfl.TFL_OP_NAME_TO_CODE[name] for name in recipes if name in tfl.TFL_OP_NAME_TO_CODE}
    rewritten, _ = quantizable_ops(content)
    _, model, graph = _graph(rewritten)
    float32 = 0  # the schema's TensorType.FLOAT32
    activation = lambda t: (t >= 0 and graph.tensors[t].type == float32  # noqa: E731
                            and tfl.get_tensor_data(graph.tensors[t], model.buffers) is None)
    missing = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = _op_name(model, op)
        if (max(code.builtinCode, code.deprecatedBuiltinCode) in integer or kind in INTEGER_KERNEL_VERSION
                or kind in BOUNDARY_OPS + SHAPE_ONLY_OPS):
            continue
        floats = [t for t in (*op.outputs, *op.inputs) if activation(t)]
        if floats:
            missing.append(f"{kind} ({tfl.get_tensor_name(graph.tensors[floats[0]])})")
    return missing


class Calibrated:
    """A float .tflite calibrated once, its ranges corrected (int8lab.model.ranges) and its biases
    (int8lab.model.bias_correction), ready to be quantized, again with chosen ops left in float
    for ``--max-drop`` (no recalibration per step).

    ``content`` is the float model, the reference (its dead channels floored, which leaves its
    outputs as they were); ``quantizable`` is what gets quantized: the same, or with its biases
    corrected where that measured better.
    """

    def __init__(self, float_content: bytes, mode: str, representative_dataset, estimator: str = "minmax",
                 bias_correction: bool = True, head_score=None):
        from ai_edge_quantizer.qtyping import TFLOperationName

        from int8lab.model import bias_correction as bias_correction_module
        from int8lab.model import ranges
        from int8lab.model.calibration import calibrate
        from int8lab.model.op_rewrite import quantizable_ops

        bias_correction_on, bias_correction = bias_correction, bias_correction_module

        self.mode, self.estimator, self.extra, self._recorrect = mode, estimator, [], None
        self.kept_float: tuple[str, ...] = ()  # tensors every quantization leaves in float
        self.dynamic_range = False  # int8 weights, activations float (int8lab.model.detector_head's choice)
        self._bias_shift = None  # (layers, delta per channel or for all): a detector's scores re-centred
        self.notes = ranges.RangeNotes()
        float_content, rewritten = quantizable_ops(float_content)
        self.notes.rewritten_ops = rewritten or None
        self.images = _calibration_images(float_content, representative_dataset)
        ranking = bias_correction.ranking_indices(len(self.images)) if bias_correction_on else []
        with _reasons(mode), _quiet():
            measured = calibrate(float_content, self.images, bias_correction.layer_inputs(float_content),
                                 frozenset(range(len(self.images))) - frozenset(ranking))
            self.calibration, self.reference = measured.qsvs, measured.outputs  # float outputs, one per image
            self.content = ranges.floor_dead_channels(float_content, self.calibration, self.notes)
            self.scopes = op_scopes(self.content)  # tensor -> the recipe regex of the op writing it
            self.quantizable = self.content
            spec = getattr(representative_dataset, "spec", None)
            if spec is not None:
                ranges.set_input_range(self.calibration, self.content, spec.value_range(), self.notes)
            ranges.clip_flat_activation_inputs(self.calibration, self.content, self.notes)
            if mode == "int8-float-io":  # the model's edges stay float: QUANTIZE in, DEQUANTIZE out
                self.extra = [(".*", TFLOperationName.INPUT, None), (".*", TFLOperationName.OUTPUT, None)]
                with phase("float where XNNPACK has no int8 kernel"):
                    self._float_where_xnnpack_has_no_int8()
            full_int8 = None
            if bias_correction_on:
                with phase("bias correction"):
                    full_int8 = self._correct_biases(ranking, measured.means, head_score)
            else:
                self.notes.bias_correction = {"kept": False, "reason": "--no-bias-correction"}
            if head_score is not None:  # any integer mode: int16 has no recipe for a decode tail's EXP either
                from int8lab.model.detector_head import choose_head_precision

                with phase("detector head precision"):
                    self.notes.detector_head = choose_head_precision(self, head_score)
            elif mode in ("int8", "int8-float-io"):
                with phase("logits precision"):
                    self._keep_logits_apart(ranges, full_int8)

    def _float_where_xnnpack_has_no_int8(self) -> None:
        """With float I/O the model is for a CPU: the ops XNNPACK refuses in int8, read from the
        quantized model's own delegation (hard-swish and softmax; a transformer's LayerNorm, GELU
        and batch matmul), stay float inside its partitions instead of splitting them for LiteRT's
        built-in kernels, always (the plan is deterministic: the same inputs give the same model), with
        both latencies measured for the report (MobileNetV3-Small: 19
        hard-swishes, 21 partitions -> 2, 0.165 -> 0.045 ms, fp32 0.089 ms; agreement 99.2 -> 99.6%;
        a ConvNeXt + attention classifier: 13 ops, 11 partitions -> 1, 0.43 -> 0.17 ms, fp32 0.19)."""
        from ai_edge_quantizer.qtyping import TFLOperationName

        from int8lab.benchmark import bench_latencies
        from int8lab.runtime import LiteRTModel, delegation

        refused: dict[str, str] = {}  # tensor -> kind of the op writing it
        anyway = {name for _, name in delegation(self.content).fallback_ops()}  # refused in float too (shape ops)
        plain = candidate = self.quantize()
        for _ in range(FLOAT_ROUNDS):  # a float op can leave a neighbour refused in turn
            found = {name: kind for kind, name in ((kind, float_name(name, self.scopes))
                                                   for kind, name in delegation(candidate).fallback_ops())
                     if kind not in ("QUANTIZE", "DEQUANTIZE") and name in self.scopes
                     and name not in refused and name not in anyway}
            if not found:
                break
            refused.update(found)
            candidate = self.quantize(tuple(refused))
        if not refused:
            return
        before, after = bench_latencies([LiteRTModel(plain), LiteRTModel(candidate)], runs=LATENCY_RUNS)
        self.notes.float_for_xnnpack = {"ops": sorted(set(refused.values())), "count": len(refused), "kept": True,
                                        "tensors": list(refused),
                                        "latency_ms": {"int8": before["p50_ms"], "float_where_refused": after["p50_ms"]}}
        self.extra += [(self.scopes[name], TFLOperationName.ALL_SUPPORTED, None) for name in refused]

    def _correct_biases(self, ranking: list[int], means: dict, head_score=None) -> bytes | None:
        """Biases less the mean shift of int8 weights (``means``: each layer input's, measured on the
        calibration images outside ``ranking``), kept if the ``ranking`` images say it helps (by the
        relative output error, or a detector's own ``output_error_measure``); the quantized model
        as it now stands, when it was built on the way (None otherwise)."""
        from int8lab.model import bias_correction
        from int8lab.runtime import LiteRTModel

        measure = head_score.output_error_measure if head_score is not None else None
        error = head_score.output_error if measure else bias_correction.relative_error
        if not ranking:
            self.notes.bias_correction = {"kept": False, "reason": "too few calibration images to rank it"}
            return None
        plain = self.quantize()
        corrected, layers = bias_correction.correct_biases(self.content, plain, means)
        if not layers:
            self.notes.bias_correction = {"kept": False, "reason": "no layer with int8 weights and a bias"}
            return plain
        images = np.concatenate([self.images[i] for i in ranking])
        reference = self.reference[ranking]
        before = error(reference, LiteRTModel(plain).predict(images))
        self.quantizable = corrected
        candidate = self.quantize()
        after = error(reference, LiteRTModel(candidate).predict(images))
        self.notes.bias_correction = {"kept": after < before, "layers": layers, "ranking_images": len(images),
                                      "measure": measure or "relative output error",
                                      "relative_error_before": before, "relative_error_after": after}
        if after >= before:
            self.quantizable = self.content
            return plain
        # Layers --max-drop leaves in float get their own biases back.
        self._recorrect = lambda keep_float: bias_correction.correct_biases(
            self.content, plain, means, frozenset(keep_float))[0]
        return candidate

    def _keep_logits_apart(self, ranges, full_int8: bytes | None = None) -> None:
        """int16 for the op writing a classifier's logits when int8 would tie them, or, when the
        model's output is float anyway (int8-float-io), that op in float with int8 weights (dynamic
        range: XNNPACK runs it, and leaves int16 to the built-in kernels; MobileNetV2 1.99 -> 1.70 ms,
        agreement unchanged). ``full_int8`` is the model quantized as things stand, when already built."""
        from ai_edge_quantizer.qtyping import TFLOperationName

        from int8lab.runtime import LiteRTModel

        chain = ranges.logits_op(self.content)
        if chain is None:
            return
        output_name = chain[0][2]
        batch = np.concatenate(self.images)
        reference = self.reference.reshape(len(batch), -1)
        quantized = LiteRTModel(full_int8 or self.quantize()).predict(batch).reshape(len(batch), -1)
        step = ranges.int8_step(self.calibration[output_name])
        risk = ranges.tie_risk(reference, quantized, step)
        risk["classes"] = reference.shape[1]
        if not ranges.logits_at_risk(risk):
            return
        from ai_edge_quantizer import qtyping, recipe
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        config = lambda build: qtyping.OpQuantizationConfig.from_dict(  # noqa: E731
            build(AlgorithmName.MIN_MAX_UNIFORM_QUANT)[0]["op_config"])
        if self.mode == "int8-float-io":  # float output: the logits in float, the FC's weights int8
            dynamic = config(recipe.dynamic_wi8_afp32)
            self.extra = [*((regex, TFLOperationName[op], dynamic if op in WEIGHTED_OPERATIONS else None)
                            for op, regex, _ in chain), *self.extra]
            self.notes.float_logits = {"ops": [op for op, _, _ in chain], "tensors": [name for _, _, name in chain],
                                       "int8_output_step": step, **risk}
            return
        int16 = config(recipe.static_wi8_ai16)
        self.extra = [*((regex, TFLOperationName[op], int16) for op, regex, _ in chain),
                      (".*", TFLOperationName.OUTPUT, int16)]
        logits = chain[-1][2]
        ranges.widen_output(self.calibration, logits)
        self.notes.int16_output = {"ops": [op for op, _, _ in chain], "tensor": logits,
                                   "int8_output_step": step,
                                   "margin": ranges.OUTPUT_MARGIN, **risk}

    def shift_class_logits(self, shift: tuple[set[str], object] | None) -> None:
        """Add ``delta`` (a number, or one per channel) to the biases of the layers writing ``layers``
        in every later quantization (``shift`` = (layers, delta); None takes it back): a detector's
        class or objectness logits re-centred."""
        self._bias_shift = shift

    def quantize(self, float_tensors=()) -> bytes:
        """The quantized model, with the ops producing ``float_tensors`` (and ``kept_float``)
        left in float."""
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
        from ai_edge_quantizer.qtyping import TFLOperationName

        from int8lab.model.int8_kernels import integer_islands
        from int8lab.model.weight_grid import keep_weight_grids

        float_tensors = (*self.kept_float, *float_tensors)
        content = self._recorrect(float_tensors) if float_tensors and self._recorrect else self.quantizable
        if self._bias_shift:
            from int8lab.model.bias_correction import shift_biases

            content = shift_biases(content, *self._bias_shift)
        if self.dynamic_range:
            self.notes.weight_grid = self.notes.int8_kernels = None
            return dynamic_range(content, [self.scopes[name] for name in float_tensors])
        with _reasons(self.mode), _quiet():
            qt = _quantizer(content, self.mode, self.estimator)
            for regex, operation, config in self.extra:  # config None: leave it float
                if config is None:
                    qt.update_quantization_recipe(regex=regex, operation_name=operation,
                                                  algorithm_key=AlgorithmName.NO_QUANTIZE)
                else:
                    qt.update_quantization_recipe(regex=regex, operation_name=operation, op_config=config)
            for name in float_tensors:
                qt.update_quantization_recipe(regex=self.scopes[name], algorithm_key=AlgorithmName.NO_QUANTIZE,
                                              operation_name=TFLOperationName.ALL_SUPPORTED)
            quantized = bytes(qt.quantize(self.calibration, enable_progress_report=False).quantized_model)
        quantized, self.notes.weight_grid = keep_weight_grids(content, quantized)
        quantized, islands = integer_islands(quantized, frozenset(float_tensors) | self._float_by_choice())
        self.notes.int8_kernels = islands or None
        return quantized

    def _float_by_choice(self) -> frozenset[str]:
        """Tensors int8lab chose to leave float beyond ``kept_float``: float logits, what XNNPACK refused."""
        return frozenset(name for kept in (self.notes.float_logits, self.notes.float_for_xnnpack) if kept
                         for name in kept.get("tensors") or ())


def dynamic_range(content: bytes, float_scopes=()) -> bytes:
    """``content`` with the weights of its weighted ops (WEIGHTED_OPERATIONS, but for the ops
    whose recipe regex is in ``float_scopes``) in int8 per channel and every activation float:
    XNNPACK quantizes each such op's input per image, over that image's own range, and writes
    its output in float (its dynamically quantized kernels). Nothing else is quantized: a
    BATCH_MATMUL of two activations has no such kernel."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    weights_only = recipe.dynamic_wi8_afp32(AlgorithmName.MIN_MAX_UNIFORM_QUANT)[0]
    entries = [{**weights_only, "operation": TFLOperationName[op]} for op in WEIGHTED_OPERATIONS]
    with _reasons("dynamic"), _quiet():
        qt = quantizer.Quantizer(bytearray(content), entries)
        for regex in float_scopes:
            qt.update_quantization_recipe(regex=regex, algorithm_key=AlgorithmName.NO_QUANTIZE,
                                          operation_name=TFLOperationName.ALL_SUPPORTED)
        return bytes(qt.quantize(None, enable_progress_report=False).quantized_model)


def float_name(name: str, known) -> str:
    """The float model's name (one of ``known``) of a tensor of the quantized model: ai-edge-quantizer
    names the int8 tensor it puts in place of an op's float output "NAME;_quantized" (a Darknet
    YOLOv3's max-pool, say); other names are their own."""
    base = name.removesuffix(";_quantized")
    return base if base != name and base in known else name


def op_scopes(content: bytes) -> dict[str, str]:
    """Each tensor an op writes -> the recipe regex of that op alone. A scope is the op's output
    names, each followed by ";", and names may hold ";" themselves (litert-torch's "Module;3"), so
    only the whole scope, anchored, picks out one op: "(^|;)Module;" would also match "Module;3;"."""
    from int8lab.model.ranges import _graph

    tfl, _, graph = _graph(content)
    scopes = {}
    for op in graph.operators:
        regex = f"^{re.escape(tfl.get_op_scope(op, graph.tensors))}$"
        for t in op.outputs:
            scopes[tfl.get_tensor_name(graph.tensors[t])] = regex
    return scopes


def _quantizer(content: bytes, mode: str, estimator: str):
    from ai_edge_quantizer import quantizer

    return quantizer.Quantizer(bytearray(content), _recipe(mode, estimator))


def _calibration_images(content: bytes, representative_dataset) -> list[np.ndarray]:
    """int8lab's ``[batch]`` batches as float32 arrays, checked to fit the model's one input."""
    serving_input(content)  # a clear error for a model without a signature or with several inputs
    return [np.asarray(batch[0], np.float32) for batch in representative_dataset()]


@contextlib.contextmanager
def _reasons(mode: str):
    """ai-edge-quantizer raises plain ValueError/RuntimeError: make them one clear error."""
    try:
        yield
    except Int8labError:
        raise
    except Exception as exc:
        raise QuantizerError(f"ai-edge-quantizer failed for mode {mode}: {exc}") from None


@contextlib.contextmanager
def _quiet():
    """Keep ai-edge-quantizer's notices, size report, NumPy warnings and tqdm bars (stdout and
    stderr) off the terminal: int8lab shows its own progress. INT8LAB_LIBRARY_LOGS=1 lets them
    through, for debugging."""
    if os.environ.get("INT8LAB_LIBRARY_LOGS") == "1":
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        yield


def with_signature(content: bytes) -> bytes:
    """The model itself, or, when it has no signature (onnx2tf's and older converters' files),
    the same model with a ``serving_default`` one naming its graph inputs and outputs: what
    ai-edge-quantizer keys calibration by."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    if Interpreter(model_content=content).get_signature_list():
        return content
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]

    def tensor_map(index: int):
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = graph.tensors[index].name, index
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = [tensor_map(i) for i in graph.inputs]
    signature.outputs = [tensor_map(i) for i in graph.outputs]
    model.signatureDefs = [signature]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def serving_input(content: bytes) -> tuple[str, str]:
    """The signature and input name that calibration samples are keyed by."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=content).get_signature_list()
    if not signatures:
        raise UsageError("the .tflite has no signature; ai-edge-quantizer needs one "
                         "(export it with a serving signature)")
    key, signature = next(iter(signatures.items()))
    if len(signature["inputs"]) != 1:
        raise UsageError(f"int8lab takes models with one image input, got {len(signature['inputs'])}")
    return key, signature["inputs"][0]
