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


def test_a_shape_read_from_a_float_tensor_is_no_float_kernel(tmp_path, photo_paths):
    """ai-edge-quantizer feeds a Flatten's SHAPE through a DEQUANTIZE: only the shape is read (a
    float .tflite exported with an open batch keeps the Flatten's shape arithmetic)."""
    import keras
    import tensorflow as tf
    from keras import layers

    from int8lab.config import DataOptions
    from int8lab.model.convert import convert
    from int8lab.model.source import ModelOptions, load_model_source

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = layers.Flatten()(layers.Conv2D(4, 3, strides=4, activation="relu")(inputs))
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    (tmp_path / "flat.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    source = load_model_source(tmp_path / "flat.tflite", ModelOptions(backend="aeq"))
    opts = DataOptions(quiet=True)
    info = inspect_tflite(convert(source, "int8", opts.generator(photo_paths[0].parent, opts.spec(source.input),
                                                                  num_samples=4)))
    assert info.op_histogram["SHAPE"] == 1 and info.op_histogram["DEQUANTIZE"] == 1
    assert info.fully_integer, info.float_ops
