"""ONNX models: rebuilt as PyTorch modules, checked against ONNX Runtime."""

from __future__ import annotations

from dataclasses import replace

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


def _graph_model(tmp_path, nodes, initializers=(), opset=17):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(initializers))
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


def test_unsupported_operators_are_named_before_anything_runs(tmp_path):
    path = _graph_model(tmp_path, [helper.make_node("RoiAlign", ["x"], ["e"]),
                                   helper.make_node("NonMaxSuppression", ["e"], ["y"])])
    with pytest.raises(UsageError, match="cannot convert: NonMaxSuppression, RoiAlign"):
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


def _const(name, values, dtype=TensorProto.FLOAT, shape=None):
    values = np.asarray(values)
    return helper.make_tensor(name, dtype, list(values.shape) if shape is None else shape, values.reshape(-1).tolist())


RNG = np.random.default_rng(5)
# (case, nodes, initializers, opset): each graph maps x [1, 3, 8, 8] to y, as the exports named carry them.
OPERATOR_GRAPHS = [
    ("yolox decode: Exp, Log, Sqrt, Reciprocal, Neg, Abs", [
        helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Log", ["e"], ["l"]),
        helper.make_node("Abs", ["l"], ["a"]), helper.make_node("Sqrt", ["a"], ["s"]),
        helper.make_node("Add", ["s", "one"], ["s1"]), helper.make_node("Reciprocal", ["s1"], ["r"]),
        helper.make_node("Neg", ["r"], ["n"]), helper.make_node("Add", ["n", "e"], ["y"])],
     [_const("one", 1.0, shape=[])], 17),
    ("timm/torchvision transformers: LayerNormalization, Erf and Gelu", [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], axis=-1, epsilon=1e-6),
        helper.make_node("Mul", ["ln", "inv_sqrt2"], ["h"]), helper.make_node("Erf", ["h"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["e1"]), helper.make_node("Mul", ["ln", "e1"], ["g2"]),
        helper.make_node("Gelu", ["ln"], ["gelu"], approximate="tanh"), helper.make_node("Add", ["g2", "gelu"], ["y"])],
     [_const("gamma", RNG.normal(size=8).astype(np.float32)), _const("beta", RNG.normal(size=8).astype(np.float32)),
      _const("inv_sqrt2", 0.7071067811865476, shape=[]), _const("one", 1.0, shape=[])], 20),
    ("activations: Softplus, Mish, Elu, Selu, PRelu", [
        helper.make_node("Softplus", ["x"], ["sp"]), helper.make_node("Mish", ["x"], ["mi"]),
        helper.make_node("Elu", ["x"], ["el"], alpha=0.7), helper.make_node("Selu", ["x"], ["se"]),
        helper.make_node("PRelu", ["x", "slope"], ["pr"]),
        helper.make_node("Sum", ["sp", "mi", "el"], ["s3"]), helper.make_node("Mean", ["se", "pr"], ["m2"]),
        helper.make_node("Add", ["s3", "m2"], ["y"])],
     [_const("slope", RNG.random((3, 1, 1)).astype(np.float32))], 18),
    ("learned upsampling and pixel shuffles: ConvTranspose (uneven pads), DepthToSpace, SpaceToDepth, Upsample", [
        helper.make_node("ConvTranspose", ["x", "wt", "bt"], ["ct"], strides=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("SpaceToDepth", ["ct"], ["sd"], blocksize=2),
        helper.make_node("DepthToSpace", ["sd"], ["ds"], blocksize=2, mode="DCR"),
        helper.make_node("DepthToSpace", ["sd"], ["dc"], blocksize=2, mode="CRD"),
        helper.make_node("Add", ["ds", "dc"], ["y"])],
     [_const("wt", RNG.normal(size=(3, 4, 3, 3)).astype(np.float32)), _const("bt", RNG.normal(size=4).astype(np.float32))],
     17),
    ("normalisation and reductions: InstanceNormalization, ReduceSum, ReduceL2, Einsum", [
        helper.make_node("InstanceNormalization", ["x", "gamma", "beta"], ["inn"]),
        helper.make_node("ReduceL2", ["inn", "axes"], ["l2"], keepdims=1), helper.make_node("Div", ["inn", "l2"], ["unit"]),
        helper.make_node("Einsum", ["unit", "unit"], ["gram"], equation="bchw,bdhw->bcd"),
        helper.make_node("ReduceSum", ["gram", "last"], ["rs"], keepdims=1),
        helper.make_node("Unsqueeze", ["rs", "last"], ["rs4"]), helper.make_node("Add", ["unit", "rs4"], ["y"])],
     [_const("gamma", RNG.normal(size=3).astype(np.float32)), _const("beta", RNG.normal(size=3).astype(np.float32)),
      _const("axes", [1], TensorProto.INT64), _const("last", [-1], TensorProto.INT64)], 18),
    ("tf2onnx resizes: Resize linear with asymmetric coordinates", [
        helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", coordinate_transformation_mode="asymmetric")],
     [_const("scales", [1.0, 1.0, 2.0, 1.5])], 17),
    ("nearest resizes as tf2onnx, Darknet and TF write them: half_pixel, pytorch_half_pixel, align_corners, "
     "tf_half_pixel_for_nn, asymmetric with each rounding", [
        *(helper.make_node("Resize", ["x", "", "scales"], [f"r{k}"], mode="nearest", coordinate_transformation_mode=t,
                           nearest_mode=r)
          for k, (t, r) in enumerate([("half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "floor"),
                                      ("align_corners", "round_prefer_ceil"), ("tf_half_pixel_for_nn", "ceil"),
                                      ("asymmetric", "round_prefer_floor")])),
        helper.make_node("Sum", [f"r{k}" for k in range(5)], ["y"])],
     [_const("scales", [1.0, 1.0, 2.0, 3.0])], 17),
    ("nearest resize to a size that is no whole multiple", [
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                         coordinate_transformation_mode="half_pixel")],
     [_const("sizes", [1, 3, 13, 5], TensorProto.INT64)], 17),
    ("rounding and masks: Floor, Ceil, Round, Sign, GreaterOrEqual, LessOrEqual, And, Or, Xor", [
        helper.make_node("Mul", ["x", "four"], ["x4"]), helper.make_node("Floor", ["x4"], ["fl"]),
        helper.make_node("Ceil", ["x4"], ["ce"]), helper.make_node("Round", ["x4"], ["ro"]),
        helper.make_node("Sub", ["x4", "two"], ["c"]), helper.make_node("Sign", ["c"], ["sg"]),
        helper.make_node("GreaterOrEqual", ["x4", "two"], ["ge"]), helper.make_node("LessOrEqual", ["x4", "one"], ["le"]),
        helper.make_node("Or", ["ge", "le"], ["o"]), helper.make_node("And", ["ge", "o"], ["an"]),
        helper.make_node("Xor", ["an", "le"], ["xo"]), helper.make_node("Cast", ["xo"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Sum", ["fl", "ce", "ro", "sg", "xf"], ["y"])],
     [_const("four", 4.0, shape=[]), _const("two", 2.0, shape=[]), _const("one", 1.0, shape=[])], 17),
]


@pytest.mark.parametrize("case, nodes, initializers, opset", OPERATOR_GRAPHS, ids=[g[0].split(":")[0] for g in OPERATOR_GRAPHS])
def test_operators_of_common_exports_match_onnx_runtime(tmp_path, case, nodes, initializers, opset):
    source = load_model_source(_graph_model(tmp_path, nodes, initializers, opset))
    x = np.random.default_rng(6).normal(size=(1, 3, 8, 8)).astype(np.float32)
    reference = source.predict(x)
    rebuilt = rebuilt_outputs(source, x)
    assert rebuilt.shape == reference.shape
    assert np.abs(rebuilt - reference).max() < 1e-4 * max(1.0, np.abs(reference).max())


@pytest.mark.slow
def test_opset_9_upsample_matches_onnx_runtime(tmp_path):
    """Darknet YOLOv3/v4 exports: Upsample with constant scales (opset 9); linear with ONNX's
    asymmetric coordinates."""
    nodes = [helper.make_node("Upsample", ["x", "scales"], ["up"], mode="nearest"),
             helper.make_node("Upsample", ["x", "scales"], ["lin"], mode="linear"),
             helper.make_node("Add", ["up", "lin"], ["y"])]
    from int8lab.model.convert import convert
    from int8lab.runtime import LiteRTModel

    source = load_model_source(_graph_model(tmp_path, nodes, [_const("scales", [1.0, 1.0, 2.0, 3.0])], 9))
    x = np.random.default_rng(7).normal(size=(1, 3, 8, 8)).astype(np.float32)
    reference = source.predict(x)
    assert np.abs(rebuilt_outputs(source, x) - reference).max() < 1e-5
    assert np.abs(LiteRTModel(convert(source, "none")).predict(x) - reference).max() < 1e-4


@pytest.mark.slow
def test_a_whole_number_half_pixel_nearest_resize_is_one_tflite_resize(tmp_path):
    """tf2onnx's and Darknet converters' upsampling (half_pixel, round_prefer_floor, scale 2) picks
    the rows asymmetric/floor does: TFLite's RESIZE_NEAREST_NEIGHBOR, not a gather."""
    from int8lab.model.convert import convert
    from int8lab.model.tflite_info import inspect_tflite

    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                              coordinate_transformation_mode="half_pixel")]
    source = load_model_source(_graph_model(tmp_path, nodes, [_const("scales", [1.0, 1.0, 2.0, 2.0])]))
    histogram = inspect_tflite(convert(source, "none")).op_histogram
    assert "RESIZE_NEAREST_NEIGHBOR" in histogram and "GATHER" not in histogram


@pytest.mark.parametrize("form", ["torch", "half first"])
def test_exact_gelu_is_one_gelu_node_and_matches_onnx_runtime(tmp_path, form):
    """x * 0.5 * (1 + erf(x / sqrt 2)), as torch exports nn.GELU (divide, then the products) and
    as other exporters write it (0.5 x first, times 1 + erf(x * 1/sqrt 2))."""
    root2, inv_root2 = _const("root2", 2 ** 0.5, shape=[]), _const("inv_root2", 2 ** -0.5, shape=[])
    one, half = _const("one", 1.0, shape=[]), _const("half", 0.5, shape=[])
    if form == "torch":
        nodes = [helper.make_node("Div", ["x", "root2"], ["u"]), helper.make_node("Erf", ["u"], ["e"]),
                 helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
                 helper.make_node("Mul", ["m", "half"], ["y"])]
    else:
        nodes = [helper.make_node("Mul", ["x", "half"], ["h"]), helper.make_node("Mul", ["inv_root2", "x"], ["u"]),
                 helper.make_node("Erf", ["u"], ["e"]), helper.make_node("Add", ["one", "e"], ["a"]),
                 helper.make_node("Mul", ["h", "a"], ["y"])]
    source = load_model_source(_graph_model(tmp_path, nodes, [root2, inv_root2, one, half]))
    assert [op for op, *_ in source.module.nodes] == ["Gelu"]
    x = np.random.default_rng(8).normal(size=(1, 3, 8, 8)).astype(np.float32) * 3
    assert np.abs(rebuilt_outputs(source, x) - source.predict(x)).max() < 1e-5


def test_an_erf_that_is_not_a_gelu_stays_erf(tmp_path):
    nodes = [helper.make_node("Div", ["x", "root2"], ["u"]), helper.make_node("Erf", ["u"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["a", "a"], ["y"])]
    source = load_model_source(_graph_model(tmp_path, nodes, [_const("root2", 2 ** 0.5, shape=[]),
                                                              _const("one", 1.0, shape=[])]))
    assert "Erf" in [op for op, *_ in source.module.nodes]


@pytest.mark.slow
def test_a_convnext_and_attention_onnx_classifier_quantizes_fully_integer(tmp_path, fashion_dir,
                                                                           convnext_attention_onnx):
    import json

    from conftest import int8lab

    model = convnext_attention_onnx
    assert {"LayerNormalization", "Erf", "MatMul", "Softmax"} <= {n.op_type for n in onnx.load(model).graph.node}
    summary = json.loads(int8lab("quantize", model, "--data", fashion_dir, "--preset", "unit", "--target", "integer",
                                 "--compare-plans", "off", "-q", "--json", "-o", tmp_path / "out").stdout)
    v, tflite = summary["validation"], summary["conversion"]["tflite"]
    assert tflite["fully_integer"] and "GELU" in tflite["op_histogram"]
    assert v["top1_agreement"] >= 0.98 and v["accuracy_drop_points"] <= 1.0  # 99.8%, -0.2 points measured


@pytest.mark.slow
@pytest.mark.parametrize("case, nodes, initializers, opset", OPERATOR_GRAPHS, ids=[g[0].split(":")[0] for g in OPERATOR_GRAPHS])
def test_operators_of_common_exports_convert_to_a_float_tflite_like_onnx_runtime(tmp_path, case, nodes, initializers,
                                                                                   opset):
    """The rebuilt module also goes through litert-torch: the float .tflite gives ONNX Runtime's outputs."""
    from int8lab.model.convert import convert
    from int8lab.runtime import LiteRTModel

    source = load_model_source(_graph_model(tmp_path, nodes, initializers, opset))
    x = np.random.default_rng(6).normal(size=(1, 3, 8, 8)).astype(np.float32)
    reference = source.predict(x)
    converted = LiteRTModel(convert(source, "none")).predict(x).reshape(reference.shape)
    assert np.abs(converted - reference).max() < 1e-4 * max(1.0, np.abs(reference).max())


def test_a_float_op_is_named_by_the_onnx_node_that_wrote_it(tmp_path, photo):
    """litert-torch names each tensor after the node's module: a warning (or an --integer-only
    refusal) says "from ONNX Erf node 'lonely_erf'", not the rebuilt module's counter."""
    from int8lab.config import DataOptions
    from int8lab.pipeline import NotFullyIntegerError, convert_job

    nodes = [helper.make_node("Div", ["x", "root2"], ["u"], name="scale"),
             helper.make_node("Erf", ["u"], ["e"], name="lonely_erf"),
             helper.make_node("Mul", ["e", "e"], ["y"], name="square")]
    model = _graph_model(tmp_path, nodes, [_const("root2", 2 ** 0.5, shape=[])])
    (tmp_path / "imgs").mkdir()
    photo.save(tmp_path / "imgs" / "a.jpg")
    opts = DataOptions(input_size=(8, 8), preset="unit", quiet=True)
    result = convert_job(model, tmp_path / "imgs", tmp_path / "m.tflite", opts, "int8")
    said = next(f.message for f in result.warnings if f.check == "float-ops")
    assert "from ONNX Erf node 'lonely_erf'" in said
    # Refused before calibration: the float graph alone says no integer plan reaches it.
    with pytest.raises(NotFullyIntegerError, match="would leave float ops in the model: .*Erf node 'lonely_erf'"):
        convert_job(model, tmp_path / "imgs", tmp_path / "m2.tflite", replace(opts, integer_only=True), "int8")
