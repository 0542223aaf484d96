from __future__ import annotations

from conftest import tiny_keras_model

from int8lab.model.tflite_info import inspect_tflite


def test_int8_model_has_no_float_ops(fashion_int8):
    assert fashion_int8.info.fully_integer and fashion_int8.info.float_ops == []
    assert fashion_int8.info.op_histogram["CONV_2D"] == 5


def test_a_kernel_the_converter_kept_in_float_is_caught(fashion_dir):
    """SIN has no int8 kernel: even with TFLITE_BUILTINS_INT8 the converter silently keeps it."""
    import keras
    import numpy as np
    import tensorflow as tf

    model = tiny_keras_model(keras.layers.Lambda(keras.ops.sin))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([np.full((1, 16, 16, 3), v, np.float32)] for v in (0, 1))
    info = inspect_tflite(converter.convert())
    assert not info.fully_integer
    assert info.float_op_summary() == "SIN x1"
