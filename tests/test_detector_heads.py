"""Detector heads as users' exports have them, built from the example detector: an NMS-free
end-to-end head ([1, 300, 6] rows of x1, y1, x2, y2, score, class, as YOLO26 and YOLOv10 export
it, with TopK, GatherElements, Tile and Mod in the graph), through quantize, predict and snippet."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, int8lab

EXAMPLE = ROOT / "examples" / "detect"
FLAGS = ("--data", EXAMPLE / "data", "--preset", "unit", "--resize", "letterbox", "--compare-plans", "off", "-q",
         "--json")


def _with_tail(module, tail):
    """``module`` (a [b, 4 + nc, anchors] xywh head) followed by ``tail``, as one module to export."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = module

        def forward(self, x):
            return tail(self.module(x))

    return Head().eval()


def end_to_end(module, max_det: int = 300):
    """Ultralytics' end-to-end selection (``v10postprocess``) after a [b, 4 + nc, anchors] xywh head."""
    import torch

    def select(y):
        preds = y.transpose(1, 2)
        b, anchors, channels = preds.shape
        nc = channels - 4
        boxes, scores = preds.split([4, nc], dim=-1)
        xy, wh = boxes.chunk(2, -1)
        boxes = torch.cat((xy - wh / 2, xy + wh / 2), -1)
        k = min(max_det, anchors)
        index = scores.amax(dim=-1).topk(k)[1].unsqueeze(-1)
        boxes = boxes.gather(dim=1, index=index.repeat(1, 1, 4))
        scores = scores.gather(dim=1, index=index.repeat(1, 1, nc))
        scores, index = scores.flatten(1).topk(k)
        i = torch.arange(b)[..., None]
        return torch.cat([boxes[i, index // nc], scores[..., None], (index % nc)[..., None].float()], dim=-1)

    return _with_tail(module, select)


def v5_head(module):
    """YOLOv5's output form after a [b, 4 + nc, anchors] head: [b, anchors, 5 + nc] rows of xywh,
    objectness and class scores whose product is the score (square roots of the best and of each
    class score here, so the best product is the original score: Pow in the graph, as v5's anchor
    scaling has)."""
    import torch

    def v5(y):
        boxes, scores = y[:, :4], y[:, 4:]
        objectness = scores.amax(1, keepdim=True).pow(0.5)
        return torch.cat((boxes, objectness, scores.pow(0.5)), 1).transpose(1, 2)

    return _with_tail(module, v5)


def yolox_head(module):
    """YOLOX's decoded output ([b, anchors, 5 + nc]: xywh in pixels, objectness, class scores),
    its sizes through exp as YOLOX decodes them (exp of the log here), and Sqrt for the square
    roots of the v5 form."""
    import torch

    def yolox(y):
        xy, wh, scores = y[:, :2], y[:, 2:4], y[:, 4:]
        objectness = torch.sqrt(scores.amax(1, keepdim=True))
        return torch.cat((xy, torch.exp(torch.log(wh)), objectness, torch.sqrt(scores)), 1).transpose(1, 2)

    return _with_tail(module, yolox)


def _export(wrap, path):
    import torch

    sys.path.insert(0, str(EXAMPLE))
    from yolo_tiny import build_model

    model = build_model()
    model.load_state_dict(torch.load(EXAMPLE / "yolo_tiny.pth"))
    torch.onnx.export(wrap(model.eval()), (torch.zeros(1, 3, 160, 160),), str(path), input_names=["images"],
                      output_names=["output0"], opset_version=17, dynamo=False)
    return path


def assert_snippet_prints_what_predict_finds(model, tmp_path, image=EXAMPLE / "data" / "images" / "test" / "test_0007.jpg"):  # noqa: E501
    """The standalone snippet of ``model`` prints the labels and scores `int8lab predict` gives."""
    snippet = tmp_path / "infer.py"
    int8lab("snippet", model, "-o", snippet)
    printed = subprocess.run([sys.executable, "-I", snippet, image], capture_output=True, text=True, check=True)
    expected = json.loads(int8lab("predict", model, image, "-o", tmp_path, "--json").stdout)[0]
    lines = [line.split() for line in printed.stdout.splitlines()[1:]]
    assert expected["detections"]
    assert [(w[0], float(w[1])) for w in lines] == [(d["label"], round(d["score"], 3)) for d in expected["detections"]]


@pytest.fixture(scope="module")
def e2e_onnx(tmp_path_factory):
    return _export(end_to_end, tmp_path_factory.mktemp("e2e") / "yolo_e2e.onnx")


def test_end_to_end_graph_is_rebuilt_as_onnx_runtime_runs_it(e2e_onnx):
    import onnx
    import onnxruntime
    import torch

    from int8lab.model.onnx_source import OnnxSource
    from int8lab.model.source import ModelOptions
    from int8lab.tasks.detect import DetectionLayout, decode

    assert {"TopK", "GatherElements", "Tile", "Mod", "ReduceMax"} <= {n.op_type for n in onnx.load(e2e_onnx).graph.node}
    image = np.random.default_rng(0).random((1, 3, 160, 160), np.float32)
    reference = onnxruntime.InferenceSession(str(e2e_onnx)).run(None, {"images": image})[0]
    rebuilt = OnnxSource(e2e_onnx, ModelOptions()).module(torch.from_numpy(image)).detach().numpy()
    layout = DetectionLayout(2, 10, input_size=(160, 160), end_to_end=True)
    for a, b in zip(decode(reference[0], layout, 0.01), decode(rebuilt[0], layout, 0.01)):
        assert np.allclose(a, b, atol=1e-3)


@pytest.mark.slow
def test_end_to_end_detector_quantizes_keeps_its_detections_and_runs_in_the_snippet(e2e_onnx, tmp_path):
    summary = json.loads(int8lab("quantize", e2e_onnx, *FLAGS, "-o", tmp_path).stdout)
    v, conversion = summary["validation"], summary["conversion"]
    assert conversion["task"]["layout"]["end_to_end"] and conversion["tflite"]["outputs"][0]["shape"] == [1, 300, 6]
    assert v["labelled"] and abs(v["map50_95"] - v["map50_95_reference"]) <= 0.01
    # 94.7% measured: its class logits re-centred by half the gap, since the whole gap took the int8
    # count at the threshold from 17 below float's to 30 above it on the calibration images (95.5% kept)
    assert v["detections_kept"] >= 0.94
    assert_snippet_prints_what_predict_finds(tmp_path / "model_int8.tflite", tmp_path)


def float16(model_path, out):
    """The ONNX model as ``export.py --half`` writes it: float16 weights, constants, input and
    output (Resize's scales stay float32, as ONNX requires)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(model_path)
    graph = model.graph
    keep = {name for node in graph.node if node.op_type == "Resize" for name in node.input[1:]}
    for k, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT and init.name not in keep:
            graph.initializer[k].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                                                  init.name))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == TensorProto.FLOAT \
                    and node.output[0] not in keep:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16)))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del graph.value_info[:]
    onnx.save(model, out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_a_v5_form_detector_quantizes_and_keeps_its_detections(tmp_path, half):
    import onnx

    model = _export(v5_head, tmp_path / "yolo_v5.onnx")
    if half:
        model = float16(model, tmp_path / "yolo_v5_half.onnx")
    assert "Pow" in {n.op_type for n in onnx.load(model).graph.node}
    summary = json.loads(int8lab("quantize", model, *FLAGS, "-o", tmp_path / "out").stdout)
    v = summary["validation"]
    assert summary["conversion"]["task"]["layout"]["objectness"]
    assert "delta" in summary["conversion"]["range_corrections"]["detector_head"]["class_logit_shift"]
    assert any("float16" in w for w in summary["warnings"]) == half
    assert v["labelled"] and abs(v["map50_95"] - v["map50_95_reference"]) <= 0.01
    assert v["detections_kept"] >= 0.94  # 94.4% (fp32) and 94.6% (fp16) measured, with the product re-centred
    assert_snippet_prints_what_predict_finds(tmp_path / "out" / "model_int8.tflite", tmp_path)


@pytest.mark.slow
def test_a_yolox_form_detector_quantizes_and_keeps_its_detections(tmp_path):
    import onnx

    model = _export(yolox_head, tmp_path / "yolox.onnx")
    assert {"Exp", "Log", "Sqrt"} <= {n.op_type for n in onnx.load(model).graph.node}
    summary = json.loads(int8lab("quantize", model, *FLAGS, "-o", tmp_path / "out").stdout)
    v = summary["validation"]
    assert summary["conversion"]["task"]["layout"]["objectness"]
    assert v["labelled"] and abs(v["map50_95"] - v["map50_95_reference"]) <= 0.01
    assert v["detections_kept"] >= 0.94  # 94.4% measured
    assert_snippet_prints_what_predict_finds(tmp_path / "out" / "model_int8.tflite", tmp_path)


def keras_detector(path, classes: int = 10, size: int = 160):
    """A Keras YOLO-style detector (untrained; fixed seed): [1, 4 + classes, anchors] with pixel
    xywh boxes and sigmoid scores in one output, as a Keras port of YOLOv8 exports it."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(16, 3, strides=4, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)  # 20 x 20 anchors
    grid = size // 8
    box = layers.Conv2D(4, 1, activation="sigmoid")(x) * float(size)  # pixels: the range that crushes the scores
    score = layers.Conv2D(classes, 1, activation="sigmoid",
                          bias_initializer=keras.initializers.Constant(-1.1))(x)
    out = layers.Concatenate()([layers.Reshape((grid * grid, 4))(box), layers.Reshape((grid * grid, classes))(score)])
    model = keras.Model(inputs, layers.Permute((2, 1))(out))
    model.save(path)
    return path


@pytest.mark.slow
def test_a_keras_detector_takes_the_route_that_keeps_its_scores(tmp_path):
    """TF's converter has no per-op precision: a Keras detector goes through ai-edge-quantizer,
    whose float decode tail keeps the scores the single int8 output scale would crush."""
    model = keras_detector(tmp_path / "det.keras")
    summary = json.loads(int8lab("quantize", model, *FLAGS, "-o", tmp_path / "out").stdout)
    conversion, v = summary["conversion"], summary["validation"]
    assert "ai-edge-quantizer" in conversion["task"]["backend"] and conversion["backend"].endswith("ai-edge-quantizer")
    assert conversion["range_corrections"]["detector_head"]["chosen"] != "full int8"
    assert v["detections_per_image"]["reference"] > 1 and v["detections_kept"] >= 0.9


@pytest.fixture(scope="module")
def keras_yolo(tmp_path_factory):
    """The trained example detector ported to Keras (examples/detect/yolo_tiny_keras.py): .keras
    and SavedModel."""
    folder = tmp_path_factory.mktemp("keras_yolo")
    for name in ("yolo_tiny.keras", "saved_model"):
        subprocess.run([sys.executable, EXAMPLE / "yolo_tiny_keras.py", folder / name], check=True, capture_output=True)
    return folder


@pytest.mark.slow
def test_the_keras_port_of_the_example_detector_gives_onnx_runtimes_outputs(keras_yolo):
    import keras
    import onnxruntime

    image = np.random.default_rng(1).random((1, 160, 160, 3), np.float32)
    session = onnxruntime.InferenceSession(str(EXAMPLE / "yolo_tiny.onnx"))
    reference = session.run(None, {session.get_inputs()[0].name: image.transpose(0, 3, 1, 2)})[0]
    ported = np.asarray(keras.models.load_model(keras_yolo / "yolo_tiny.keras")(image))
    assert np.abs(ported[:, 4:] - reference[:, 4:]).max() < 1e-5 and np.abs(ported - reference).max() < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("form", ["yolo_tiny.keras", "saved_model"])
def test_a_trained_keras_yolo_quantizes_keeps_its_detections_and_runs_in_the_snippet(keras_yolo, tmp_path, form):
    """Keras' nearest upsampling becomes reshapes and TILE, which ai-edge-quantizer leaves in
    float (rewritten as one RESIZE_NEAREST_NEIGHBOR); its DFL is two Dense layers after the softmax
    (both in the float tail); both forms convert with the batch fixed to 1 (no shape arithmetic)."""
    summary = json.loads(int8lab("quantize", keras_yolo / form, *FLAGS, "-o", tmp_path / "out").stdout)
    v, conversion = summary["validation"], summary["conversion"]
    assert conversion["backend"].endswith("ai-edge-quantizer")
    assert conversion["range_corrections"]["rewritten_ops"] == {"UPSAMPLING": 2}  # as one RESIZE_NEAREST_NEIGHBOR each
    assert not {"SHAPE", "PACK", "STRIDED_SLICE"} & set(conversion["tflite"]["op_histogram"])
    assert v["labelled"] and abs(v["map50_95"] - v["map50_95_reference"]) <= 0.01
    assert v["detections_kept"] >= 0.93  # 93.7% measured (.keras)
    assert_snippet_prints_what_predict_finds(tmp_path / "out" / "model_int8.tflite", tmp_path)


@pytest.mark.slow
def test_a_signature_less_nhwc_float_tflite_detector_quantizes_and_keeps_its_detections(tmp_path):
    """Ultralytics' and onnx2tf's TFLite exports: NHWC float input, and often no SignatureDef."""
    from tensorflow.lite.tools import flatbuffer_utils

    nhwc = tmp_path / "nhwc.tflite"
    int8lab("convert", EXAMPLE / "yolo_tiny.onnx", "--io-layout", "nhwc", "--input-size", "160", "160",
            "--quantize", "none", "-q", "-o", nhwc)
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(nhwc.read_bytes()))
    model.signatureDefs = []
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    summary = json.loads(int8lab("quantize", bare, *FLAGS, "-o", tmp_path / "out").stdout)
    v = summary["validation"]
    assert summary["conversion"]["tflite"]["inputs"][0]["shape"] == [1, 160, 160, 3]
    assert v["labelled"] and abs(v["map50_95"] - v["map50_95_reference"]) <= 0.01
    assert v["detections_kept"] >= 0.94  # 94.6% measured, as the ONNX route of the same model
    assert_snippet_prints_what_predict_finds(tmp_path / "out" / "model_int8.tflite", tmp_path,
                                             EXAMPLE / "data" / "images" / "test" / "test_0003.jpg")


@pytest.mark.slow
def test_octav_ranges_quantize_a_detector_whose_decode_has_constant_operands(tmp_path):
    """OCTAV takes symmetric tensors only; the anchor grid added in the decode is an asymmetric
    constant operand, so OCTAV goes to the weighted ops and min/max ranges to the rest."""
    summary = json.loads(int8lab("quantize", EXAMPLE / "yolo_tiny.onnx", "--input-size", "160", "160", *FLAGS,
                                 "--range-estimator", "octav", "-o", tmp_path).stdout)
    v = summary["validation"]
    assert abs(v["map50_95"] - v["map50_95_reference"]) <= 0.01 and v["detections_kept"] >= 0.94  # 94.7% measured
