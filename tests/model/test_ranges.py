"""The range corrections before ai-edge-quantizer quantizes: input from the spec, classifier logits
kept apart in int16, biases that fit int32 — on real conversions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from int8lab.config import DataOptions
from int8lab.model.ranges import tie_risk
from int8lab.model.source import load_model_source
from int8lab.pipeline import convert_job
from int8lab.runtime import LiteRTModel


def test_tie_risk_counts_int8_ties_and_close_float_logits():
    reference = np.array([[3.0, 2.99, 0.0], [5.0, 1.0, 0.0], [1.0, 4.0, 3.0]])
    quantized = np.array([[3.0, 3.0, 0.0], [5.0, 1.0, 0.0], [1.0, 4.0, 3.0]])
    risk = tie_risk(reference, quantized, output_step=0.04)
    assert risk["int8_tie_rate"] == pytest.approx(1 / 3) and risk["top2_gap_below_step"] == pytest.approx(1 / 3)


def test_tie_risk_sees_the_clipping_unseen_images_meet():
    """Each half on the other half's range: logits above its maximum clip to 255 and tie."""
    calm = np.array([[1.0, 0.5, 0.0], [1.0, 0.2, 0.0]])
    confident = np.array([[9.0, 8.0, 0.0], [9.5, 8.5, 0.0]])
    reference = np.stack([calm[0], confident[0], calm[1], confident[1]])  # halves: calm, confident
    risk = tie_risk(reference, reference, output_step=1e-3)
    assert risk["int8_tie_rate"] == 0 and risk["unseen_tie_rate"] == pytest.approx(0.5)


def test_input_range_comes_from_the_preset_not_the_images(tmp_path, torch_options, fashion_dir):
    """[0, 1] ('unit') gives the input scale 1/255 however dark the calibration images are."""
    source = load_model_source(__import__("conftest").TORCH_MODEL, torch_options)
    opts = DataOptions(preset="unit", quiet=True, num_samples=20)
    result = convert_job(source, fashion_dir, tmp_path / "m.tflite", opts, "int8")
    scale, zero_point = LiteRTModel(result.path).input["quantization"]
    assert scale == pytest.approx(1 / 255) and zero_point == -128
    corrections = result.metadata["range_corrections"]
    assert corrections["input_range"] == [0.0, 1.0]
    assert corrections["calibrated_input_range"][1] < 1.0  # what min/max alone would have used


def dead_channel_model(path):
    """A real Keras CNN whose second output channel has all-zero weights and a bias of 0.75: its
    output is the constant 0.75, and a near-zero weight scale would overflow that bias in int32."""
    import keras

    inputs = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same")
    outputs = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    model = keras.Model(inputs, outputs)
    kernel, bias = conv.get_weights()
    kernel[..., 1] = 0.0
    bias[:] = [0.0, 0.75, 0.0, 0.0]
    conv.set_weights([kernel, bias])
    model.save(path)
    return path


def test_dead_channel_keeps_its_bias_and_nothing_warns(tmp_path, fashion_dir):
    from int8lab.model.source import ModelOptions

    source = load_model_source(dead_channel_model(tmp_path / "dead.keras"), ModelOptions(backend="aeq"))
    opts = DataOptions(preset="unit", quiet=True, num_samples=10, input_size=(16, 16), channels=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = convert_job(source, fashion_dir, tmp_path / "m.tflite", opts, "int8")
    assert result.metadata["range_corrections"]["floored_bias_channels"] == 1
    batch = opts.generator(fashion_dir, opts.spec(source.input), num_samples=4).first_batch()
    channel = LiteRTModel(result.path).predict(batch)[:, 1]
    assert np.allclose(channel, 0.75, atol=0.02)


def flat_activation_model(path):
    """Convs with large weights before SiLU and hard-swish: pre-activations far below where
    either is flat."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(0, 4))(inputs)
    x = layers.Activation("silu")(x)
    x = layers.Conv2D(8, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(0, 1))(x)
    x = layers.Activation("hard_silu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3)(x))
    model.save(path)
    return path


def test_silu_and_hard_swish_inputs_lose_only_their_flat_end(tmp_path, fashion_dir):
    from int8lab.model.convert import convert
    from int8lab.model.source import ModelOptions
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.report.markdown import correction_lines

    source = load_model_source(flat_activation_model(tmp_path / "flat.keras"), ModelOptions(backend="aeq"))
    float_model = convert(source, "none")
    assert {"LOGISTIC", "MUL", "HARD_SWISH"} <= set(inspect_tflite(float_model).op_histogram)
    opts = DataOptions(preset="unit", quiet=True, num_samples=10, input_size=(16, 16), channels=3)
    result = convert_job(source, fashion_dir, tmp_path / "m.tflite", opts, "int8")
    clipped = result.metadata["range_corrections"]["flat_clipped"]
    assert clipped["tensors"] == 2 and clipped["largest_step_reduction"] > 1.5
    assert any("clipped where the activation is flat" in line
               for line in correction_lines(result.metadata["range_corrections"]))
    batch = opts.generator(fashion_dir, opts.spec(source.input), num_samples=8).first_batch()
    reference, quantized = LiteRTModel(float_model).predict(batch), LiteRTModel(result.path).predict(batch)
    assert np.abs(quantized - reference).max() < 0.05 * np.abs(reference).max()
