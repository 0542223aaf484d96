"""ONNX models: rebuilt as PyTorch modules, checked against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import ROOT
from onnx import TensorProto, helper

from int8lab.errors import UsageError
from int8lab.model.source import load_model_source


@pytest.fixture(scope="module")
def batch(fashion_dir):
    from int8lab.data.generator import RepresentativeDataGenerator

    generator = RepresentativeDataGenerator(fashion_dir, num_samples=6, input_size=(28, 28), channels=1,
                                            preset="unit", layout="nchw", progress=False)
    return np.concatenate(list(generator.generate_batches()))


def rebuilt_outputs(source, batch):
    """The rebuilt module, one image at a time (the export fixed the batch size to 1)."""
    import torch

    with torch.no_grad():
        return np.concatenate([source.module(torch.from_numpy(batch[i:i + 1])).numpy()
                               for i in range(len(batch))])


def test_input_shape_is_read_from_the_graph(torch_onnx):
    assert load_model_source(torch_onnx).input.shape == (1, 1, 28, 28)


def test_rebuilt_module_matches_onnx_runtime(torch_onnx, batch):
    source = load_model_source(torch_onnx)
    assert np.abs(rebuilt_outputs(source, batch) - source.predict(batch)).max() < 1e-5  # ORT


def test_rebuilt_module_matches_the_pytorch_original(torch_onnx, torch_module, batch):
    import torch

    with torch.no_grad():
        original = torch_module(torch.from_numpy(batch)).numpy()
    assert np.abs(rebuilt_outputs(load_model_source(torch_onnx), batch) - original).max() < 1e-5


def _graph_model(tmp_path, nodes, initializers=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(initializers))
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_unsupported_operators_are_named_before_anything_runs(tmp_path):
    path = _graph_model(tmp_path, [helper.make_node("Erf", ["x"], ["e"]),
                                   helper.make_node("NonMaxSuppression", ["e"], ["y"])])
    with pytest.raises(UsageError, match="cannot convert: Erf, NonMaxSuppression"):
        load_model_source(path)


def test_asymmetric_padding_pooling_and_clip_match_onnx_runtime(tmp_path):
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], rng.normal(size=108).astype(np.float32))
    low = helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0])
    high = helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[0, 0, 1, 1], strides=[2, 2]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    source = load_model_source(_graph_model(tmp_path, nodes, [weight, low, high]))
    x = rng.random((1, 3, 8, 8), dtype=np.float32) * 4
    rebuilt = rebuilt_outputs(source, x)
    assert rebuilt.shape == (1, 4)
    assert np.abs(rebuilt - source.predict(x)).max() < 1e-5


@pytest.mark.parametrize("kind, count_include_pad", [("MaxPool", 0), ("AveragePool", 0), ("AveragePool", 1)])
def test_uneven_pooling_pads_match_onnx_runtime(tmp_path, kind, count_include_pad):
    """TF-style "same" pooling (tf2onnx exports, e.g. ResNet's stem): pads of 0 before, 1 after."""
    extra = {"count_include_pad": count_include_pad} if kind == "AveragePool" else {}
    nodes = [helper.make_node(kind, ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], **extra)]
    source = load_model_source(_graph_model(tmp_path, nodes))
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)  # negatives too
    rebuilt = rebuilt_outputs(source, x)
    assert rebuilt.shape == (1, 3, 4, 4)
    assert np.abs(rebuilt - source.predict(x)).max() < 1e-5


DETECTOR_ONNX = ROOT / "examples" / "detect" / "yolo_tiny.onnx"


def test_dynamic_axes_detector_is_folded_and_matches_onnx_runtime():
    """An Ultralytics-style export (dynamic batch/height/width: Shape, Range, Expand, Resize...)
    runs as a rebuilt module at the size given, like ONNX Runtime runs the original."""
    import torch

    from int8lab.model.source import ModelOptions

    source = load_model_source(DETECTOR_ONNX, ModelOptions(input_size=(160, 160)))
    assert source.input.shape == (1, 3, 160, 160)
    image = np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)
    with torch.no_grad():
        rebuilt = source.module(torch.from_numpy(image)).numpy()
    assert rebuilt.shape == (1, 14, 525)
    assert np.abs(rebuilt - source.predict(image)).max() < 1e-3


def test_dynamic_axes_without_input_size_ask_for_it():
    with pytest.raises(UsageError, match="--input-size"):
        load_model_source(DETECTOR_ONNX).input


def test_pow_of_a_sigmoid_matches_onnx_runtime(tmp_path):
    """YOLOv5's head: (2 sigmoid(x))^2 scales the anchors."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["s", "two"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["y"])]
    source = load_model_source(_graph_model(tmp_path, nodes, [two]))
    x = np.random.default_rng(2).normal(size=(1, 3, 8, 8)).astype(np.float32)
    assert np.abs(rebuilt_outputs(source, x) - source.predict(x)).max() < 1e-5


def test_a_float16_export_is_rebuilt_in_float32_and_said_so(tmp_path):
    """An ``--half`` export: float16 input, weights and output."""
    rng = np.random.default_rng(3)
    weight = helper.make_tensor("w", TensorProto.FLOAT16, [4, 3, 3, 3], rng.normal(size=108).astype(np.float16))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Sigmoid", ["c"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)], [weight])
    path = tmp_path / "half.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    source = load_model_source(path)
    x = rng.random((1, 3, 8, 8), dtype=np.float32)
    reference = source.predict(x)  # ONNX Runtime on the float16 file, float32 out
    assert source.float16 and reference.dtype == np.float32
    assert np.abs(rebuilt_outputs(source, x) - reference).max() < 2e-3


def test_selection_and_comparison_operators_match_onnx_runtime(tmp_path):
    """What end-to-end heads and postprocessing exports carry: arg/reduce over channels, masks,
    Where, elementwise Max/Min, Expand, Tile, integer Div and Mod, Cast back to float."""
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [1, 3, 8, 8])
    reps = helper.make_tensor("reps", TensorProto.INT64, [4], [1, 3, 1, 1])
    three = helper.make_tensor("three", TensorProto.INT64, [], [3])
    nodes = [helper.make_node("ArgMax", ["x"], ["am"], axis=1, keepdims=1),
             helper.make_node("ArgMin", ["x"], ["an"], axis=1, keepdims=1),
             helper.make_node("Div", ["am", "three"], ["q"]), helper.make_node("Mod", ["an", "three"], ["r"]),
             helper.make_node("Add", ["q", "r"], ["qr"]),
             helper.make_node("Cast", ["qr"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Tile", ["f", "reps"], ["ft"]),
             helper.make_node("Greater", ["x", "half"], ["gt"]), helper.make_node("Less", ["x", "half"], ["lt"]),
             helper.make_node("Not", ["lt"], ["nlt"]), helper.make_node("Equal", ["gt", "nlt"], ["same"]),
             helper.make_node("Where", ["gt", "x", "half"], ["w"]),
             helper.make_node("ReduceMax", ["x"], ["mx"], axes=[1], keepdims=1),
             helper.make_node("ReduceMin", ["x"], ["mn"], axes=[1], keepdims=1),
             helper.make_node("Expand", ["mx", "shape"], ["mxe"]),
             helper.make_node("Max", ["w", "mn"], ["big"]), helper.make_node("Min", ["big", "mxe"], ["small"]),
             helper.make_node("Cast", ["same"], ["samef"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["small", "ft"], ["s1"]), helper.make_node("Add", ["s1", "samef"], ["y"])]
    source = load_model_source(_graph_model(tmp_path, nodes, [half, shape, reps, three]))
    x = np.random.default_rng(3).random((1, 3, 8, 8)).astype(np.float32)
    assert np.abs(rebuilt_outputs(source, x) - source.predict(x)).max() < 1e-5
