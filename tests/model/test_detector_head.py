"""The decode tail of a YOLO head, found in the float .tflite: what int8lab may keep in float."""

from __future__ import annotations

from pathlib import Path

import pytest

from int8lab.model.detector_head import head_plan
from int8lab.model.source import ModelOptions, load_model_source

pytest.importorskip("torch")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "detect"


@pytest.fixture(scope="module")
def example_float_tflite() -> bytes:
    return load_model_source(EXAMPLE / "yolo_tiny.onnx", ModelOptions(input_size=(160, 160))).content


@pytest.mark.slow
def test_the_tail_runs_from_the_output_back_to_the_heads_learned_convolutions(example_float_tflite):
    plan = head_plan(example_float_tflite)
    # Three scales, each with a box and a class convolution; DFL's expectation (a convolution fed by
    # the softmax) is decode, not a learned output.
    assert len(plan.output_convolutions) == 6
    assert {"SOFTMAX", "CONV_2D", "CONCATENATION", "LOGISTIC"} <= set(plan.decode_ops)
    assert not set(plan.decode) & set(plan.output_convolutions)
    names, candidates = zip(*plan.candidates())
    assert names[0] == "full int8" and candidates[0] == ()
    assert set(candidates[1]) < set(candidates[2])


def test_a_classifier_has_no_decode_tail(fashion_fp32_tflite):
    assert head_plan(fashion_fp32_tflite.read_bytes()) is None


@pytest.mark.slow
def test_the_head_precision_pass_runs_on_its_own(example_float_tflite):
    """choose_head_precision takes a calibrated model and a detector's score, and leaves the
    closest candidate's float ops in it; nothing of ai-edge-quantizer's own is needed to call it."""
    import numpy as np

    from int8lab.config import DataOptions
    from int8lab.model.aeq import Calibrated
    from int8lab.model.detector_head import choose_head_precision
    from int8lab.tasks.detect import HeadScore, resolve_layout

    opts = DataOptions(preset="unit", resize="letterbox", input_size=(160, 160), layout="nchw", quiet=True,
                       num_samples=16)
    generator = opts.generator(EXAMPLE / "data", opts.spec(), split="val")
    calibrated = Calibrated(example_float_tflite, "int8", generator, bias_correction=False)
    assert calibrated.kept_float == () and calibrated.notes.detector_head is None
    score = HeadScore(resolve_layout(calibrated.reference.shape, (160, 160), 10))
    notes = choose_head_precision(calibrated, score)
    chosen = next(c for c in notes["candidates"] if c["name"] == notes["chosen"])
    assert chosen["score"] == max(c["score"] for c in notes["candidates"])
    assert list(calibrated.kept_float) == notes["float_tensors"] and np.isfinite(chosen["latency_ms"])
