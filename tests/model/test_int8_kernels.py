"""Float islands ai-edge-quantizer leaves (LEAKY_RELU) become LiteRT's integer kernels."""

from __future__ import annotations

import numpy as np


def _leaky_model() -> bytes:
    """Conv -> LeakyReLU -> conv -> LeakyReLU read by two ops: Darknet's pattern."""
    import tensorflow as tf

    from int8lab.model.aeq import with_signature

    rng = np.random.default_rng(0)
    w1, w2 = (tf.constant(rng.normal(size=(3, 3, c, 8)).astype(np.float32) * 0.3) for c in (3, 8))

    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 3), tf.float32)])
    def net(x):
        a = tf.nn.leaky_relu(tf.nn.conv2d(x, w1, 1, "SAME"), 0.1)
        b = tf.nn.leaky_relu(tf.nn.conv2d(a, w2, 1, "SAME"), 0.1)
        return tf.concat([b, tf.nn.relu(b) * 2.0], -1)

    return with_signature(tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()], net).convert())


def _calibrated():
    from int8lab.model.aeq import Calibrated
    from int8lab.model.ranges import _graph, _op_name

    content = _leaky_model()
    tfl, model, graph = _graph(content)
    leaky = tuple(tfl.get_tensor_name(graph.tensors[op.outputs[0]]) for op in graph.operators
                  if _op_name(model, op) == "LEAKY_RELU")
    rng = np.random.default_rng(1)
    batches = [[rng.random((1, 8, 8, 3), dtype=np.float32)] for _ in range(16)]
    return Calibrated(content, "int8", lambda: iter(batches), bias_correction=False), leaky, batches[0][0]


def test_leaky_relu_runs_on_the_int8_kernel_inside_xnnpack_as_the_float_islands_compute_it():
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.report.markdown import correction_lines
    from int8lab.runtime import LiteRTModel, delegation

    calibrated, leaky, x = _calibrated()
    islands = calibrated.quantize(leaky)  # what ai-edge-quantizer writes: DEQUANTIZE, float op, QUANTIZE
    quantized = calibrated.quantize()
    info = inspect_tflite(quantized)
    assert info.float_ops == [] and info.op_histogram["LEAKY_RELU"] == 2 and "DEQUANTIZE" not in info.op_histogram
    assert calibrated.notes.int8_kernels == {"integer": {"LEAKY_RELU": 2}, "beside_float": []}
    assert not [kind for kind, _ in delegation(quantized).fallback_ops() if kind == "LEAKY_RELU"]
    reference = LiteRTModel(calibrated.content).predict(x)
    error = {name: float(np.abs(LiteRTModel(m).predict(x) - reference).mean())
             for name, m in (("islands", islands), ("int8", quantized))}
    assert error["int8"] <= 1.1 * error["islands"], error
    assert any("2 LEAKY_RELU op(s) that ai-edge-quantizer leaves in float" in line
               for line in correction_lines(calibrated.notes.as_dict()))


def test_an_op_asked_to_stay_float_stays_float():
    from int8lab.model.tflite_info import inspect_tflite

    calibrated, leaky, _ = _calibrated()
    info = inspect_tflite(calibrated.quantize(leaky[:1]))
    assert [op.split(" (")[0] for op in info.float_ops] == ["LEAKY_RELU"]
    assert calibrated.notes.int8_kernels["integer"] == {"LEAKY_RELU": 1}


def test_an_activation_only_float_ops_read_stays_float_and_is_named():
    from int8lab.model.ranges import _graph, _op_name

    calibrated, leaky, _ = _calibrated()
    tfl, model, graph = _graph(calibrated.content)
    second_conv = [tfl.get_tensor_name(graph.tensors[op.outputs[0]]) for op in graph.operators
                   if _op_name(model, op) == "CONV_2D"][1]
    calibrated.quantize((second_conv,))
    assert calibrated.notes.int8_kernels == {"integer": {}, "beside_float": [leaky[0]]}  # the second reads a float conv


def test_exp_of_a_box_decode_runs_in_int8_when_every_kernel_is_to_be_integer():
    import tensorflow as tf

    from int8lab.model.aeq import quantize_tflite, with_signature
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.runtime import LiteRTModel

    @tf.function(input_signature=[tf.TensorSpec((1, 6, 4), tf.float32)])
    def decode(x):
        return tf.exp(x * 0.5) * 3.0

    content = with_signature(tf.lite.TFLiteConverter.from_concrete_functions([decode.get_concrete_function()],
                                                                             decode).convert())
    rng = np.random.default_rng(4)
    batches = [[rng.normal(size=(1, 6, 4)).astype(np.float32)] for _ in range(16)]
    notes = {}
    quantized = quantize_tflite(content, "int8", lambda: iter(batches), notes=notes)
    assert inspect_tflite(quantized).float_ops == [] and notes["int8_kernels"]["integer"] == {"EXP": 1}
    x = batches[0][0]
    reference = LiteRTModel(content).predict(x)
    assert np.median(np.abs(LiteRTModel(quantized).predict(x) / reference - 1)) < 0.02
