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


def _anchor_head_tflite(classes: int = 2, anchors: int = 3) -> bytes:
    """A Darknet / YOLOv5-style head in float .tflite: two scales, each one convolution writing
    ``anchors`` x (box 4, objectness 1, classes) logits, decoded to sigmoid(objectness) x
    sigmoid(class) scores beside the boxes."""
    import numpy as np
    import tensorflow as tf

    group, rng = 5 + classes, np.random.default_rng(0)
    weight = lambda *shape: tf.constant(rng.normal(0, 0.3, shape), tf.float32)  # noqa: E731
    body_w, head_w = weight(3, 3, 3, 8), [weight(1, 1, 8, anchors * group) for _ in range(2)]
    head_b = [weight(anchors * group) for _ in range(2)]

    @tf.function(input_signature=[tf.TensorSpec((1, 32, 32, 3), tf.float32)])
    def detector(x):
        body = tf.nn.relu(tf.nn.conv2d(x, body_w, 2, "SAME"))
        rows = []
        for k, feature in enumerate((body, tf.nn.max_pool2d(body, 2, 2, "VALID"))):
            raw = tf.reshape(tf.nn.conv2d(feature, head_w[k], 1, "VALID") + head_b[k], (1, -1, group))
            rows.append(tf.concat([raw[..., :4], tf.sigmoid(raw[..., 4:5]) * tf.sigmoid(raw[..., 5:])], -1))
        return tf.concat(rows, 1)

    return tf.lite.TFLiteConverter.from_concrete_functions([detector.get_concrete_function()], detector).convert()


def test_an_anchor_based_head_s_objectness_logits_are_found():
    """Every fifth channel of each 5 + classes group is an anchor's objectness logit: what
    int8lab re-centres for a YOLOv3/v5 head, whose class logits share the convolution."""
    from int8lab.model.detector_head import class_convolutions, objectness_channels

    content = _anchor_head_tflite()
    plan = head_plan(content)
    assert len(plan.output_convolutions) == 2
    assert class_convolutions(content, plan, 2) == set()
    layers, channels, group = objectness_channels(content, plan, 2)
    assert layers == set(plan.output_convolutions) and (channels, group) == (21, 7)
    assert objectness_channels(content, plan, 3) is None  # 21 channels are no groups of 8


def test_a_contrastive_head_s_class_logit_bias_is_found(tmp_path):
    """YOLO-World's class logits come from no convolution of their own: normalised embeddings
    times the text embeddings, times a scale, plus a bias. That ADD is what int8lab re-centres."""
    import litert_torch
    import numpy as np
    import torch

    from int8lab.model.bias_correction import shift_biases
    from int8lab.model.detector_head import class_convolutions, class_logit_adds
    from int8lab.runtime import LiteRTModel

    class Contrastive(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.box, self.embed = (torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.Conv2d(8, 4, 1),
                                               torch.nn.Conv2d(8, 6, 1))
            self.register_buffer("text", torch.randn(3, 6))

        def forward(self, x):
            body = torch.relu(self.body(x))
            embeddings = torch.nn.functional.normalize(self.embed(body), dim=1).flatten(2)  # [1, 6, anchors]
            logits = torch.matmul(self.text, embeddings) * 20.0 + (-5.0)  # [1, classes, anchors]
            return torch.cat([self.box(body).flatten(2), logits.sigmoid()], 1)

    torch.manual_seed(0)
    target = tmp_path / "contrastive.tflite"
    litert_torch.convert(Contrastive().eval(), (torch.zeros(1, 3, 16, 16),)).export(str(target))
    content = target.read_bytes()
    plan = head_plan(content)
    assert class_convolutions(content, plan, 3) == set()
    adds = class_logit_adds(content, plan, 3)
    assert len(adds) == 1
    x = np.random.default_rng(0).random((1, 3, 16, 16), np.float32)
    before, after = (LiteRTModel(c).predict(x)[:, 4:] for c in (content, shift_biases(content, adds, 0.5)))
    unsaturated = (before > 1e-6) & (before < 1 - 1e-3) & (after < 1 - 1e-3)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert unsaturated.sum() > 30
    assert np.allclose(logit(after[unsaturated]) - logit(before[unsaturated]), 0.5, atol=1e-2)


@pytest.mark.slow
def test_a_dynamic_range_body_has_int8_weights_float_activations_and_runs_in_xnnpack(example_float_tflite):
    """The candidate a detector's head search measures beside static int8: every convolution's
    weights int8 per channel, no activation quantized (no QUANTIZE op, float I/O), the
    convolutions asked float left float, every op in XNNPACK (its dynamically quantized kernels)
    but what it refuses in float too, and outputs close to float's."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from int8lab.model.aeq import dynamic_range, op_scopes
    from int8lab.model.tflite_info import float_op_parts, inspect_tflite
    from int8lab.runtime import LiteRTModel, delegation

    kept = head_plan(example_float_tflite).output_convolutions[0]
    content = dynamic_range(example_float_tflite, [op_scopes(example_float_tflite)[kept]])
    info = inspect_tflite(content)
    assert "QUANTIZE" not in info.op_histogram and info.inputs[0].dtype == info.outputs[0].dtype == "float32"
    assert info.size_bytes < 0.4 * len(example_float_tflite)
    interpreter = Interpreter(model_content=content)
    tensors = interpreter.get_tensor_details()
    weights = {tensors[op["outputs"][0]]["name"]: tensors[op["inputs"][1]]["dtype"]
               for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"}
    assert weights.pop(kept) == np.float32 and set(weights.values()) == {np.int8}
    assert {float_op_parts(op)[0] for op in delegation(content).fallback} <= {"RESIZE_NEAREST_NEIGHBOR"}
    x = np.random.default_rng(0).uniform(0, 1, LiteRTModel(content).input_shape).astype(np.float32)
    reference = LiteRTModel(example_float_tflite).predict(x)
    assert np.abs(LiteRTModel(content).predict(x) - reference).max() < 0.05 * np.abs(reference).max()
