"""Bias correction before ai-edge-quantizer quantizes: the mean shift of int8 weights taken out of
each bias, kept when the ranking images say so — on real conversions and real images."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TORCH_MODEL

from int8lab.config import DataOptions
from int8lab.model import bias_correction
from int8lab.model.aeq import Calibrated
from int8lab.model.source import load_model_source
from int8lab.runtime import LiteRTModel


def test_every_fourth_image_ranks_and_the_others_give_the_means():
    assert bias_correction.ranking_indices(10) == [3, 7]


def test_too_few_images_to_rank_rank_nothing():
    assert bias_correction.ranking_indices(7) == []


@pytest.fixture(scope="module")
def fashion_torch(torch_options, fashion_dir):
    """The PyTorch example calibrated on 100 Fashion-MNIST images, and 200 held-out ones."""
    source = load_model_source(TORCH_MODEL, torch_options)
    opts = DataOptions(preset="unit", quiet=True, num_samples=100)
    spec = opts.spec(source.input)
    calibration = opts.generator(fashion_dir, spec)
    held_out = opts.generator(fashion_dir, spec, split="test", num_samples=200)
    images = np.concatenate(list(held_out.generate_batches()))
    return Calibrated(source.content, "int8", calibration), images


def test_correction_lowers_the_error_on_images_it_never_saw(fashion_torch):
    calibrated, images = fashion_torch
    notes = calibrated.notes.bias_correction
    assert notes["kept"] and notes["layers"] == 6 and notes["ranking_images"] == 25
    assert notes["relative_error_after"] < notes["relative_error_before"]
    reference = LiteRTModel(calibrated.content).predict(images)
    corrected = LiteRTModel(calibrated.quantize()).predict(images)
    corrected_content, calibrated.quantizable = calibrated.quantizable, calibrated.content
    plain = LiteRTModel(calibrated.quantize()).predict(images)  # the same calibration, biases as trained
    calibrated.quantizable = corrected_content
    assert (bias_correction.relative_error(reference, corrected)
            < 0.9 * bias_correction.relative_error(reference, plain))


def test_a_layer_left_in_float_keeps_its_trained_bias(fashion_torch):
    """--max-drop leaves layers in float: the correction was for their int8 weights, not theirs."""
    calibrated, _ = fashion_torch
    tfl, model, graph, layers = bias_correction._layers(calibrated.content)
    first = layers[0][1]
    output = tfl.get_tensor_name(graph.tensors[first.outputs[0]])
    trained = tfl.get_tensor_data(graph.tensors[first.inputs[2]], model.buffers)

    def bias_of(content: bytes):
        tfl, model, graph, layers = bias_correction._layers(content)
        op = next(op for _, op in layers if tfl.get_tensor_name(graph.tensors[op.outputs[0]]) == output)
        return tfl.get_tensor_data(graph.tensors[op.inputs[2]], model.buffers)

    assert bias_of(calibrated.quantize([output])).dtype == np.float32  # the layer is float
    assert np.array_equal(bias_of(calibrated.quantize([output])), trained)
    assert not np.array_equal(bias_of(calibrated.quantizable), trained)  # corrected when int8


def test_too_few_calibration_images_leave_the_biases_alone(torch_options, fashion_dir):
    source = load_model_source(TORCH_MODEL, torch_options)
    opts = DataOptions(preset="unit", quiet=True, num_samples=7)
    calibrated = Calibrated(source.content, "int8", opts.generator(fashion_dir, opts.spec(source.input)))
    assert calibrated.notes.bias_correction == {"kept": False, "reason": "too few calibration images to rank it"}
    assert calibrated.quantizable is calibrated.content


def dense_tflite() -> bytes:
    """A float .tflite of one FULLY_CONNECTED layer (8 -> 5) with a bias."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(5, bias_initializer="random_normal")(inputs))
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def test_correction_uses_the_int8_weights_the_quantizer_wrote():
    """bias - (dequantized int8 weights - float weights) @ E[x], with the weights and their
    per-channel scales read through the LiteRT interpreter, not the flatbuffer."""
    from ai_edge_litert.interpreter import Interpreter

    from int8lab.model.aeq import quantize_tflite

    content = dense_tflite()
    rng = np.random.default_rng(0)
    batches = [[rng.normal(1.0, 1.0, (1, 8)).astype(np.float32)] for _ in range(12)]
    quantized = quantize_tflite(content, "int8", lambda: iter(batches))
    mean = rng.normal(size=8)
    input_name = next(d["name"] for d in Interpreter(model_content=content).get_input_details())
    corrected, layers = bias_correction.correct_biases(content, quantized, {input_name: mean})
    assert layers == 1

    def constants(model: bytes):
        interpreter = Interpreter(model_content=model)
        details = [d for d in interpreter.get_tensor_details() if d["dtype"] in (np.float32, np.int8)]
        tensors = {}
        for d in details:
            try:
                tensors[tuple(d["shape"])] = (interpreter.get_tensor(d["index"]), d["quantization_parameters"])
            except ValueError:  # activations have no data before a call
                pass
        return tensors

    weights, _ = constants(content)[(5, 8)]
    bias = constants(content)[(5,)][0]
    int8_weights, params = constants(quantized)[(5, 8)]
    dequantized = (int8_weights.astype(np.float64) - params["zero_points"][:, None]) * params["scales"][:, None]
    expected = bias - (dequantized - weights) @ mean
    assert np.allclose(constants(corrected)[(5,)][0], expected, atol=1e-6)
    assert not np.allclose(expected, bias, atol=1e-6)  # the weights' rounding did shift the output
