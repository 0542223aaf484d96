"""Every conversion mode on the real example model, with TensorFlow's own converter."""

from __future__ import annotations

import numpy as np
import pytest

from int8lab.errors import UsageError
from int8lab.model.convert import CALIBRATED_MODES, MODES, convert
from int8lab.model.source import KerasSource
from int8lab.model.tflite_info import inspect_tflite

EXPECTED_INPUT = {"none": "float32", "fp16": "float32", "dynamic": "float32", "int8": "int8",
                  "uint8": "uint8", "int8-float-io": "float32", "int16x8": "int16"}


@pytest.fixture(scope="module")
def source(fashion_model):
    return KerasSource(fashion_model)


@pytest.fixture(scope="module")
def calibration(fashion_dir, fashion_opts, source):
    return fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), num_samples=20)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_converts_the_example_model(source, calibration, mode):
    content = convert(source, mode, calibration if mode in CALIBRATED_MODES else None)
    info = inspect_tflite(content)
    assert info.inputs[0].dtype == EXPECTED_INPUT[mode]
    assert info.inputs[0].shape == [1, 28, 28, 1]
    if mode == "int8-float-io":  # the CPU plan: integer kernels, and float inside XNNPACK where it has no int8 one
        from int8lab.runtime import delegation

        assert not delegation(content).fallback
    else:
        assert info.fully_integer == (mode in CALIBRATED_MODES)


def test_integer_io_carries_the_calibrated_scale(fashion_int8):
    # [0, 1] inputs quantized to int8: scale 1/255, zero point -128.
    inp = fashion_int8.info.inputs[0]
    assert inp.scale == pytest.approx(1 / 255, rel=1e-3) and inp.zero_point == -128


def test_calibrated_mode_without_data_is_a_clear_error(source):
    with pytest.raises(UsageError, match="needs calibration data"):
        convert(source, "int8")


def test_unknown_mode_names_the_modes(source):
    with pytest.raises(UsageError, match="int16x8"):
        convert(source, "int4")


def test_float_conversion_gives_the_keras_outputs(source, fashion_dir, fashion_opts):
    from int8lab.runtime import LiteRTModel

    batch = next(fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input)).generate_batches())
    tflite = LiteRTModel(convert(source, "none"))
    assert np.abs(tflite.predict(batch) - source.predict(batch)).max() < 1e-5
