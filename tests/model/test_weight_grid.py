"""Weights already on an int8 grid (a QAT export, a float rebuild of an int8 model) keep it."""

from __future__ import annotations

import numpy as np
import pytest

from int8lab.model.convert import convert
from int8lab.model.source import TFLiteSource
from int8lab.model.weight_grid import fits, grid_step


def test_a_channel_on_a_grid_gives_its_step():
    step = 0.0125
    values = step * np.array([-127, -3, 0, 5, 6, 90], np.float32)
    assert grid_step(values) == pytest.approx(step)
    assert grid_step(values[[0, 1, 3]], tensor_step=step) == pytest.approx(step)  # 5 and -3 alone: gap 8 steps


def test_ordinary_float_weights_and_channels_past_127_steps_have_none():
    rng = np.random.default_rng(0)
    assert grid_step(rng.normal(size=300).astype(np.float32)) is None
    assert grid_step(rng.normal(size=9).astype(np.float32)) is None
    assert not fits(0.01 * np.array([-141.0, 3.0, 114.0]), 0.01)  # an asymmetric uint8 grid's far end


def _on_uint8_grid(content: bytes) -> bytes:
    """Each conv / dense weight tensor rounded to a per-tensor asymmetric uint8 grid and back,
    as ONNX Runtime's int8 export rebuilt in float has them."""
    from tensorflow.lite.tools import flatbuffer_utils

    from int8lab.model.bias_correction import _layers

    tfl, model, graph, layers = _layers(content)
    for _, op in layers:
        tensor = graph.tensors[op.inputs[1]]
        w = tfl.get_tensor_data(tensor, model.buffers).astype(np.float64)
        step = (w.max() - w.min()) / 255
        zero = np.round(-w.min() / step)
        q = np.clip(np.round(w / step) + zero, 0, 255) - zero
        model.buffers[tensor.buffer].data = np.frombuffer((q * step).astype(np.float32).tobytes(), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _channels(content: bytes) -> list[np.ndarray]:
    """Each layer's weights, dequantized where int8, one row per output channel."""
    from int8lab.model.bias_correction import _dequantized_weights, _layers
    from int8lab.model.ranges import _WEIGHT_AXIS

    tfl, model, graph, layers = _layers(content)
    rows = []
    for kind, op in layers:
        tensor = graph.tensors[op.inputs[1]]
        w = _dequantized_weights(tfl, model, tensor)
        w = tfl.get_tensor_data(tensor, model.buffers) if w is None else w
        rows.append(np.moveaxis(w, _WEIGHT_AXIS[kind], 0).reshape(w.shape[_WEIGHT_AXIS[kind]], -1))
    return rows


@pytest.mark.slow
def test_int8_weights_store_a_grid_exactly_and_leave_other_models_alone(fashion_fp32_tflite, fashion_dir,
                                                                        fashion_opts, tmp_path):
    gridded = tmp_path / "gridded.tflite"
    gridded.write_bytes(_on_uint8_grid(fashion_fp32_tflite.read_bytes()))
    results = {}
    for path in (fashion_fp32_tflite, gridded):
        source = TFLiteSource(path)
        notes = {}
        calibration = fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), num_samples=20)
        results[path] = (convert(source, "int8", calibration, notes), notes["weight_grid"])
    assert results[fashion_fp32_tflite][1]["channels"] == 0
    quantized, counts = results[gridded]
    assert counts["channels"] > 0.8 * counts["of_channels"]
    exact = sum(int(np.all(np.abs(q - f) <= 1e-6 * np.abs(f).max(), axis=1).sum())
                for q, f in zip(_channels(quantized), _channels(gridded.read_bytes())))
    assert exact >= counts["channels"]
