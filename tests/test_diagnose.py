"""Per-layer errors and the float-fallback loop, with TF's QuantizationDebugger on the example."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from int8lab.diagnose import (
    IDEAL_RMSE_OVER_SCALE,
    SUSPECT_RMSE_OVER_SCALE,
    fallback_to_budget,
    layer_errors,
    make_debugger,
    quantize_with_float,
    recover_accuracy,
    tensor_errors,
)
from int8lab.errors import UsageError
from int8lab.model.convert import convert
from int8lab.model.source import ModelOptions, load_model_source
from int8lab.model.tflite_info import inspect_tflite
from int8lab.runtime import LiteRTModel


@pytest.fixture(scope="module")
def source(fashion_model):
    return load_model_source(fashion_model)


@pytest.fixture(scope="module")
def debugger(source, fashion_dir, fashion_opts):
    calibration = fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), split="val",
                                         num_samples=30)
    return make_debugger(source, calibration)


@pytest.fixture(scope="module")
def ranked(debugger):
    return layer_errors(debugger)


@pytest.fixture(scope="module")
def agreement_drop(source, fashion_dir, fashion_opts):
    """Points of top-1 agreement lost against the float model on 60 calibration-split images."""
    generator = fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), split="val", num_samples=60)
    tensors = np.concatenate(list(generator.generate_batches()))
    reference = source.predict(tensors).argmax(1)
    return lambda content: 100 * float(1 - np.mean(LiteRTModel(content).predict(tensors).argmax(1) == reference))


def test_every_quantized_layer_is_ranked_worst_first(ranked):
    assert len(ranked) == 8 and {r.op for r in ranked} >= {"CONV_2D", "FULLY_CONNECTED"}
    values = [r.rmse_over_scale for r in ranked]
    assert values == sorted(values, reverse=True) and 0.05 < values[-1] <= values[0] < 2


def test_flags_follow_the_suspect_threshold(ranked):
    median = float(np.median([r.rmse_over_scale for r in ranked]))
    for r in ranked:
        assert r.flagged == (r.rmse_over_scale > SUSPECT_RMSE_OVER_SCALE or r.rmse_over_scale > 3 * median)


def test_denylisted_layer_stays_float_and_the_rest_integer(debugger, ranked):
    conv = next(r for r in ranked if r.op == "CONV_2D")
    info = inspect_tflite(quantize_with_float(debugger, [conv.tensor]))
    assert info.float_op_summary() == "CONV_2D x1" and info.inputs[0].dtype == "int8"


def one_each(ranked) -> list[list[str]]:
    """The fallback's candidates: each ranked tensor alone."""
    return [[r.tensor] for r in ranked]


def test_fallback_stops_at_once_when_full_int8_meets_the_budget(debugger, ranked, agreement_drop):
    result = fallback_to_budget(partial(quantize_with_float, debugger), one_each(ranked), agreement_drop, budget=100.0)
    assert result.met and result.float_tensors == [] and len(result.steps) == 1


def test_fallback_reverts_worst_first_until_the_budget_holds(debugger, ranked, agreement_drop):
    result = fallback_to_budget(partial(quantize_with_float, debugger), one_each(ranked), agreement_drop, budget=0.0)
    assert result.float_tensors == [r.tensor for r in ranked[:len(result.float_tensors)]]
    assert all(step.drop > 0.0 for step in result.steps[:-1])
    assert result.met == (result.steps[-1].drop <= 0.0)
    assert result.met or len(result.float_tensors) == len(ranked)


def test_fallback_reports_a_budget_it_cannot_meet(debugger, ranked):
    result = fallback_to_budget(partial(quantize_with_float, debugger), one_each(ranked), lambda content: 5.0, budget=1.0)
    assert not result.met and len(result.float_tensors) == len(ranked) and len(result.steps) == len(ranked) + 1


def test_negative_budget_is_refused(source, debugger):
    with pytest.raises(UsageError, match="cannot be negative"):
        recover_accuracy(source, None, None, -0.5)


def test_torch_source_is_refused_with_a_reason(torch_options):
    from conftest import TORCH_MODEL

    with pytest.raises(UsageError, match="QuantizationDebugger"):
        make_debugger(load_model_source(TORCH_MODEL, torch_options), None)


@pytest.fixture(scope="module")
def side_by_side(fashion_model, fashion_dir, fashion_opts):
    """End-to-end errors of the example through ai-edge-quantizer, and its int8 model."""
    source = load_model_source(fashion_model, ModelOptions(backend="aeq"))
    calibration = fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), split="val", num_samples=20)
    quantized = convert(source, "int8", calibration)
    samples = [sample[None] for batch in calibration.generate_batches() for sample in batch]
    return tensor_errors(convert(source, "none"), quantized, samples), quantized


def test_side_by_side_ranks_each_quantized_activation_worst_first(side_by_side):
    rows, quantized = side_by_side
    kernels = {op: n for op, n in inspect_tflite(quantized).op_histogram.items() if op not in ("QUANTIZE", "DEQUANTIZE")}
    assert sorted(r.op for r in rows) == sorted(op for op, n in kernels.items() for _ in range(n))
    values = [r.rmse_over_scale for r in rows]
    assert values == sorted(values, reverse=True) and all(np.isfinite(values))


def test_side_by_side_error_starts_near_the_ideal_and_grows_with_depth(side_by_side):
    rows, _ = side_by_side
    first_conv = min((r for r in rows if r.op == "CONV_2D"), key=lambda r: r.rmse_over_scale)
    assert first_conv.rmse_over_scale < 3 * IDEAL_RMSE_OVER_SCALE
    assert max(r.rmse_over_scale for r in rows) > first_conv.rmse_over_scale


def test_side_by_side_of_a_model_with_itself_has_no_error(side_by_side):
    _, quantized = side_by_side
    samples = [np.full((1, 28, 28, 1), v, np.float32) for v in (0.0, 0.5, 1.0)]
    rows = tensor_errors(quantized, quantized, samples)
    assert rows and all(r.mse == 0 and r.max_abs_error == 0 and not r.flagged for r in rows)


@pytest.fixture(scope="module")
def torch_requantizer(torch_options, fashion_dir, fashion_opts):
    """The PyTorch example on the ai-edge-quantizer path, calibrated once on 30 images."""
    from conftest import TORCH_MODEL

    from int8lab.model.aeq import Calibrated

    source = load_model_source(TORCH_MODEL, torch_options)
    calibration = fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), split="val", num_samples=30)
    return source, calibration, Calibrated(convert(source, "none"), "int8", calibration)


def test_requantizer_leaves_exactly_the_named_layer_float(torch_requantizer):
    _, _, requantizer = torch_requantizer
    full = inspect_tflite(requantizer.quantize([]))
    conv = next(r for r in tensor_errors(requantizer.content, requantizer.quantize([]),
                                         [np.zeros((1, 1, 28, 28), np.float32)]) if r.op == "CONV_2D")
    partial_float = inspect_tflite(requantizer.quantize([conv.tensor]))
    assert full.fully_integer and partial_float.float_op_summary() == "CONV_2D x1"
    assert partial_float.inputs[0].dtype == "int8" and partial_float.outputs[0].dtype == "int8"


def test_fallback_on_the_aeq_path_stops_once_the_drop_holds(torch_requantizer):
    """A stand-in ranking-set score: the budget holds as soon as any kernel runs in float."""
    _, _, requantizer = torch_requantizer
    ranked = tensor_errors(requantizer.content, requantizer.quantize([]),
                           [np.full((1, 1, 28, 28), 0.5, np.float32)])
    result = fallback_to_budget(requantizer.quantize, one_each(ranked),
                                lambda content: 0.0 if inspect_tflite(content).float_ops else 1.0, budget=0.5)
    assert result.met and result.float_tensors == [ranked[0].tensor] and len(result.steps) == 2


def test_recover_accuracy_takes_pytorch_models_and_ranks_side_by_side(torch_requantizer, fashion_dir, fashion_opts,
                                                                       tmp_path):
    from int8lab.diagnose import END_TO_END
    from int8lab.evalset import store_eval_set

    source, calibration, _ = torch_requantizer
    ranking = store_eval_set(tmp_path / "ranking.npy", fashion_dir, fashion_opts.spec(source.input), "val", None,
                             "auto", False)
    recovery = recover_accuracy(source, calibration, ranking, budget=100.0)
    assert not recovery.needed and recovery.method == END_TO_END and recovery.float_tensors == []
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {r.op for r in recovery.ranked}


def test_side_by_side_flags_the_layers_whose_error_grows_over_3x(side_by_side):
    rows, _ = side_by_side
    assert all(r.growth is not None and r.flagged == (r.growth > 3) for r in rows)
    first_conv = min((r for r in rows if r.op == "CONV_2D"), key=lambda r: r.rmse_over_scale)
    assert first_conv.growth == pytest.approx(first_conv.rmse_over_scale / IDEAL_RMSE_OVER_SCALE)


def test_long_tensor_names_keep_their_distinctive_end():
    from int8lab.diagnose import short_name

    name = ("efficientnet_lite_pytorch.model.EfficientNet/efficientnet_lite_pytorch.utils.Conv2dStaticSamePadding"
            "__blocks_3__depthwise_conv;other_fused_name")
    shown = short_name(name)
    assert len(shown) == 70 and shown.startswith("…") and shown.endswith("__blocks_3__depthwise_conv")
    assert short_name("conv2d/Relu;x") == "conv2d/Relu"
