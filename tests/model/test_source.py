from __future__ import annotations

import pytest

from int8lab.errors import UsageError
from int8lab.model.source import TFLiteSource, load_model_source


def test_keras_input_size_channels_and_layout_are_read(fashion_model):
    model_input = load_model_source(fashion_model).input
    assert model_input.size == (28, 28) and model_input.channels == 1 and model_input.layout == "nhwc"


def test_tflite_input_is_read_from_the_flatbuffer(fashion_fp32_tflite):
    source = load_model_source(fashion_fp32_tflite)
    assert isinstance(source, TFLiteSource)
    assert source.input.size == (28, 28) and source.input.channels == 1


def test_saved_model_folder_is_a_source(tmp_path, fashion_model):
    import keras

    keras.models.load_model(fashion_model, compile=False).export(tmp_path / "saved", verbose=False)
    source = load_model_source(tmp_path / "saved")
    assert source.kind == "saved_model" and source.input.size == (28, 28)


def test_quantized_tflite_is_refused_as_a_float_source(fashion_int8):
    with pytest.raises(UsageError, match="already quantized"):
        load_model_source(fashion_int8.path)


def test_unknown_model_file_names_the_formats(tmp_path):
    (tmp_path / "model.caffemodel").write_bytes(b"\0")
    with pytest.raises(UsageError, match="SavedModel folder.*onnx"):
        load_model_source(tmp_path / "model.caffemodel")


def test_nchw_input_is_recognised(tmp_path):
    import keras

    inputs = keras.Input((3, 20, 20))
    model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    model.save(tmp_path / "nchw.keras")
    model_input = load_model_source(tmp_path / "nchw.keras").input
    assert model_input.layout == "nchw" and model_input.size == (20, 20) and model_input.channels == 3
