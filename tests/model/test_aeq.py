"""A float .tflite quantized by ai-edge-quantizer, calibrated with int8lab's data."""

from __future__ import annotations

import json

import numpy as np

import pytest

from int8lab.errors import UsageError
from int8lab.model.convert import convert
from int8lab.model.source import TFLiteSource
from int8lab.model.tflite_info import inspect_tflite


@pytest.fixture(scope="module")
def source(fashion_fp32_tflite):
    return TFLiteSource(fashion_fp32_tflite)


@pytest.mark.slow
@pytest.mark.parametrize("mode,io_type", [("int8", "int8"), ("int8-float-io", "float32"), ("int16x8", "int16")])
def test_static_recipes_give_a_fully_integer_model(source, fashion_dir, fashion_opts, mode, io_type):
    """Every kernel integer, but with float output a classifier's tying logits: their op in float
    with int8 weights, which XNNPACK runs (int16 would fall back to the built-in kernels)."""
    calibration = fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), num_samples=20)
    notes = {}
    info = inspect_tflite(convert(source, mode, calibration, notes))
    assert info.inputs[0].dtype == io_type
    if mode == "int8-float-io":
        assert notes["float_logits"]["ops"] == ["SOFTMAX", "FULLY_CONNECTED"] and notes["int16_output"] is None
        assert sorted(op.split(" ")[0] for op in info.float_ops) == ["FULLY_CONNECTED", "SOFTMAX"]
        assert info.op_histogram["FULLY_CONNECTED"] >= 1 and info.size_bytes < 0.4 * len(source.content)
    else:
        assert info.fully_integer


def test_dynamic_recipe_keeps_float_activations(source):
    info = inspect_tflite(convert(source, "dynamic"))
    assert not info.fully_integer and info.size_bytes < 0.4 * len(source.content)


@pytest.mark.parametrize("mode", ["fp16", "uint8"])
def test_modes_without_a_recipe_point_to_the_keras_path(source, mode):
    with pytest.raises(UsageError, match="Keras/SavedModel"):
        convert(source, mode, representative_dataset=lambda: iter(()))


def test_octav_range_estimator_gives_a_fully_integer_model(fashion_fp32_tflite, fashion_dir, fashion_opts):
    from int8lab.model.source import ModelOptions, load_model_source

    source = load_model_source(fashion_fp32_tflite, ModelOptions(range_estimator="octav"))
    calibration = fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), num_samples=20)
    assert inspect_tflite(convert(source, "int8", calibration)).fully_integer


def test_unknown_range_estimator_names_the_choices(fashion_fp32_tflite):
    from int8lab.model.source import ModelOptions, load_model_source

    with pytest.raises(UsageError, match="octav"):
        load_model_source(fashion_fp32_tflite, ModelOptions(range_estimator="mse"))


def test_a_tflite_without_a_signature_gets_one_and_quantizes(fashion_fp32_tflite, fashion_dir, fashion_opts, tmp_path):
    """onnx2tf's and older converters' files have no SignatureDef; ai-edge-quantizer keys by one."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(fashion_fp32_tflite.read_bytes()))
    model.signatureDefs = []
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    assert not Interpreter(model_path=str(bare)).get_signature_list()
    source = TFLiteSource(bare)
    calibration = fashion_opts.generator(fashion_dir, fashion_opts.spec(source.input), num_samples=10)
    info = inspect_tflite(convert(source, "int8", calibration))
    assert info.fully_integer and info.inputs[0].dtype == "int8"


@pytest.mark.slow
def test_float_io_runs_what_xnnpack_refuses_in_int8_in_float(tmp_path, fashion_dir, convnext_attention_onnx):
    """A transformer's LayerNorm, GELU, batch matmuls and softmax have no int8 kernel in XNNPACK:
    with float I/O they run in float inside its one partition."""
    from conftest import int8lab

    from int8lab.runtime import delegation

    model = tmp_path / "model.tflite"
    int8lab("convert", convnext_attention_onnx, "--data", fashion_dir, "--preset", "unit", "--quantize",
            "int8-float-io", "-q", "-o", model)
    refused = json.loads((tmp_path / "model.tflite.json").read_text())["range_corrections"]["float_for_xnnpack"]
    assert refused["kept"] and {"GELU", "BATCH_MATMUL", "SOFTMAX", "RSQRT"} <= set(refused["ops"])
    runs = delegation(model.read_bytes())
    assert runs.partitions == 1 and not runs.fallback


def test_each_recipe_scope_picks_out_exactly_the_op_writing_its_tensor(torch_onnx):
    """litert-torch names tensors "Module", "Module;1", ...: a scope regex must not let the first
    name match the op writing "Module;1" (a float decode tail would take ops beyond it)."""
    import re

    from int8lab.model.aeq import op_scopes
    from int8lab.model.ranges import _graph
    from int8lab.model.source import load_model_source

    content = load_model_source(torch_onnx).content
    tfl, _, graph = _graph(content)
    all_scopes = [tfl.get_op_scope(op, graph.tensors) for op in graph.operators]
    regexes = op_scopes(content)
    assert any(";" in name for name in regexes)  # the names that made prefixes collide
    for name, regex in regexes.items():
        assert sum(bool(re.search(regex, scope)) for scope in all_scopes) == 1, name


def test_a_batch_matmul_with_a_constant_operand_computes_in_int8():
    """YOLO-World's image-text attention: a BATCH_MATMUL of activations with a constant (the text
    embeddings). Quantized per channel, LiteRT's kernel returned zeros; per tensor it computes."""
    import tensorflow as tf

    from int8lab.model.aeq import quantize_tflite, with_signature
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.runtime import LiteRTModel

    rng = np.random.default_rng(3)
    text = tf.constant(rng.normal(size=(2, 8, 5)).astype(np.float32) * np.linspace(0.2, 3, 5, dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec((1, 16, 8), tf.float32)])
    def attention(x):
        return tf.matmul(tf.reshape(x, (2, 8, 8)), text)

    content = with_signature(tf.lite.TFLiteConverter.from_concrete_functions(
        [attention.get_concrete_function()], attention).convert())
    assert "BATCH_MATMUL" in inspect_tflite(content).op_histogram
    batches = [[rng.normal(size=(1, 16, 8)).astype(np.float32)] for _ in range(16)]
    quantized = quantize_tflite(content, "int8", lambda: iter(batches))
    assert inspect_tflite(quantized).float_ops == []
    x = batches[0][0]
    reference, int8 = LiteRTModel(content).predict(x), LiteRTModel(quantized).predict(x)
    assert np.abs(int8 - reference).max() < 0.05 * np.abs(reference).max()


def test_a_tensor_ai_edge_quantizer_renamed_is_found_by_its_float_name():
    """YOLOv3-tiny's float-I/O plan failed with a KeyError on "NAME;_quantized": the XNNPACK plan
    looks tensors of the quantized model up in the float model's scopes."""
    from int8lab.model.aeq import float_name

    known = {"OnnxNode_n40_h0ewh", "Module;3"}
    assert float_name("OnnxNode_n40_h0ewh;_quantized", known) == "OnnxNode_n40_h0ewh"
    assert float_name("Module;3", known) == "Module;3"
    assert float_name("other;_quantized", known) == "other;_quantized"


def test_ops_without_an_integer_recipe_are_read_from_the_float_graph():
    """LEAKY_RELU has no ai-edge-quantizer recipe but an integer island (int8lab.model.int8_kernels);
    L2_NORMALIZATION (YOLO-World's contrastive head) has neither: only it is named, before any
    calibration."""
    import keras
    import tensorflow as tf
    from conftest import tiny_keras_model

    from int8lab.model.aeq import ops_without_integer_recipe

    leaky = tiny_keras_model(keras.layers.LeakyReLU(negative_slope=0.1))
    normalised = tiny_keras_model(keras.layers.Lambda(lambda x: tf.math.l2_normalize(x, axis=-1)))
    as_tflite = lambda model: tf.lite.TFLiteConverter.from_keras_model(model).convert()  # noqa: E731
    assert ops_without_integer_recipe(as_tflite(leaky)) == []
    missing = ops_without_integer_recipe(as_tflite(normalised))
    assert [entry.split(" (")[0] for entry in missing] == ["L2_NORMALIZATION"]
