"""Ops ai-edge-quantizer leaves float (EXPAND_DIMS, TILE, a nearest upsampling's chain, REDUCE_MAX)
rewritten as equal ones it quantizes."""

from __future__ import annotations

import numpy as np


def _repeat_model() -> bytes:
    """Nearest 2x upsampling as TF lowers Keras' UpSampling2D with the batch left open (repeat:
    expand, tile, reshape), with a serving signature as a Keras export has."""
    import tensorflow as tf

    from int8lab.model.aeq import with_signature

    @tf.function(input_signature=[tf.TensorSpec((None, 4, 4, 3), tf.float32)])
    def upsample(x):
        y = tf.tile(tf.expand_dims(x, 2), [1, 1, 2, 1, 1])
        return tf.nn.relu(tf.reshape(y, (-1, 8, 4, 3)) * 2.0)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([upsample.get_concrete_function()], upsample)
    return with_signature(converter.convert())


def _kinds(content: bytes) -> list[str]:
    from int8lab.model.ranges import _graph, _op_name

    _, model, graph = _graph(content)
    return [_op_name(model, op) for op in graph.operators]


def test_expand_dims_and_tile_become_reshape_and_broadcast_to_with_the_same_outputs():
    from int8lab.model.op_rewrite import quantizable_ops
    from int8lab.runtime import LiteRTModel

    content = _repeat_model()
    assert {"EXPAND_DIMS", "TILE"} <= set(_kinds(content))
    rewritten, counts = quantizable_ops(content)
    assert counts == {"EXPAND_DIMS": 1, "TILE": 1}
    assert not {"EXPAND_DIMS", "TILE"} & set(_kinds(rewritten)) and "BROADCAST_TO" in _kinds(rewritten)
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype(np.float32)
    assert np.array_equal(LiteRTModel(rewritten).predict(x), LiteRTModel(content).predict(x))


def test_the_rewritten_upsampling_quantizes_fully_integer():
    from int8lab.model.aeq import quantize_tflite
    from int8lab.model.tflite_info import inspect_tflite

    rng = np.random.default_rng(1)
    batches = [[rng.normal(size=(1, 4, 4, 3)).astype(np.float32)] for _ in range(8)]
    notes = {}
    quantized = quantize_tflite(_repeat_model(), "int8", lambda: iter(batches), notes=notes)
    assert notes["rewritten_ops"] == {"EXPAND_DIMS": 1, "TILE": 1}
    assert inspect_tflite(quantized).float_ops == []


def test_a_model_without_them_is_returned_as_it_is():
    import tensorflow as tf

    from int8lab.model.op_rewrite import quantizable_ops

    @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    def double(x):
        return x * 2.0

    content = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()], double).convert()
    assert quantizable_ops(content) == (content, {})


def test_a_keras_nearest_upsampling_becomes_one_resize_nearest_neighbor():
    """Keras' UpSampling2D at batch 1 converts to reshape, tile, reshape, tile, reshape: one
    RESIZE_NEAREST_NEIGHBOR, as the ONNX route writes it (the four tiles would run as slow
    BROADCAST_TO kernels), exact, and fully integer after ai-edge-quantizer."""
    import keras
    import tensorflow as tf
    from keras import layers

    from int8lab.model.aeq import quantize_tflite
    from int8lab.model.op_rewrite import quantizable_ops
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.runtime import LiteRTModel

    inputs = keras.Input(batch_shape=(1, 4, 5, 3))
    model = keras.Model(inputs, layers.UpSampling2D((2, 3), interpolation="nearest")(layers.ReLU()(inputs)))
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    assert "TILE" in _kinds(content)
    rewritten, counts = quantizable_ops(content)
    assert counts == {"UPSAMPLING": 1} and _kinds(rewritten) == ["RELU", "RESIZE_NEAREST_NEIGHBOR"]
    x = np.random.default_rng(2).normal(size=(1, 4, 5, 3)).astype(np.float32)
    assert np.array_equal(LiteRTModel(rewritten).predict(x), LiteRTModel(content).predict(x))
    rng = np.random.default_rng(3)
    batches = [[rng.normal(size=(1, 4, 5, 3)).astype(np.float32)] for _ in range(8)]
    assert inspect_tflite(quantize_tflite(content, "int8", lambda: iter(batches))).float_ops == []


def test_reduce_max_becomes_a_max_pool_with_the_same_outputs_and_quantizes_fully_integer():
    """YOLO-World's adaptive max pools (a max over one spatial axis, kept) and an attention's max
    over its keys (the last axis, dropped): MAX_POOL_2D between reshapes, exact, integer, in XNNPACK."""
    import tensorflow as tf

    from int8lab.model.aeq import quantize_tflite, with_signature
    from int8lab.model.op_rewrite import quantizable_ops
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.runtime import LiteRTModel, delegation

    @tf.function(input_signature=[tf.TensorSpec((1, 6, 5, 4), tf.float32)])
    def pools(x):
        rows = tf.reduce_max(x, axis=1, keepdims=True)  # [1, 1, 5, 4]
        keys = tf.reduce_max(x, axis=-1)  # [1, 6, 5]
        area = tf.reduce_max(x, axis=[1, 2])  # [1, 4]
        return tf.nn.relu(rows + keys[..., None] + area[:, None, None, :])

    content = with_signature(tf.lite.TFLiteConverter.from_concrete_functions([pools.get_concrete_function()],
                                                                             pools).convert())
    assert _kinds(content).count("REDUCE_MAX") == 3
    rewritten, counts = quantizable_ops(content)
    assert counts == {"REDUCE_MAX": 3} and "REDUCE_MAX" not in _kinds(rewritten)
    x = np.random.default_rng(4).normal(size=(1, 6, 5, 4)).astype(np.float32)
    assert np.array_equal(LiteRTModel(rewritten).predict(x), LiteRTModel(content).predict(x))
    rng = np.random.default_rng(5)
    batches = [[rng.normal(size=(1, 6, 5, 4)).astype(np.float32)] for _ in range(8)]
    notes = {}
    quantized = quantize_tflite(content, "int8", lambda: iter(batches), notes=notes)
    assert inspect_tflite(quantized).float_ops == []
    assert not [kind for kind, _ in delegation(quantized).fallback_ops() if kind == "MAX_POOL_2D"]
    from int8lab.report.markdown import correction_lines

    assert any("3 REDUCE_MAX op(s) rewritten as MAX_POOL_2D" in line for line in correction_lines(notes))


def test_an_fp16_export_quantizes_from_its_weights_widened_to_float32(fashion_model, fashion_dir):
    """Ultralytics' _float16.tflite and any fp16 export keep weights as float16 constants behind
    DEQUANTIZE ops; ai-edge-quantizer failed on them ("'NoneType' object has no attribute 'ndim'")."""
    from int8lab.config import DataOptions
    from int8lab.model.aeq import quantize_tflite
    from int8lab.model.convert import convert
    from int8lab.model.op_rewrite import quantizable_ops
    from int8lab.model.source import load_model_source
    from int8lab.runtime import LiteRTModel

    half = convert(load_model_source(fashion_model), "fp16")
    assert "DEQUANTIZE" in _kinds(half)
    widened, counts = quantizable_ops(half)
    assert counts == {"DEQUANTIZE": 12} and "DEQUANTIZE" not in _kinds(widened)
    assert len(widened) < 1.2 * len(half) * 2  # the float16 buffers are not kept beside the float32 ones
    opts = DataOptions(preset="unit", quiet=True, num_samples=20, input_size=(28, 28), channels=1)
    images = np.concatenate(list(opts.generator(fashion_dir, opts.spec()).generate_batches()))
    assert np.abs(LiteRTModel(widened).predict(images) - LiteRTModel(half).predict(images)).max() < 1e-6
    notes = {}
    quantized = quantize_tflite(half, "int8", opts.generator(fashion_dir, opts.spec()), notes=notes)
    assert notes["rewritten_ops"] == {"DEQUANTIZE": 12}
    assert inspect_float_ops(quantized) == []


def inspect_float_ops(content: bytes) -> list[str]:
    from int8lab.model.tflite_info import inspect_tflite

    return inspect_tflite(content).float_ops
