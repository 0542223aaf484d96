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
FLAGS = ("--data", EXAMPLE / "data", "--preset", "unit", "--resize", "letterbox", "-q", "--json")


def end_to_end(module, max_det: int = 300):
    """Ultralytics' end-to-end selection (``v10postprocess``) after a [b, 4 + nc, anchors] xywh head."""
    import torch

    class EndToEnd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = module

        def forward(self, x):
            preds = self.module(x).transpose(1, 2)
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

    return EndToEnd().eval()


@pytest.fixture(scope="module")
def e2e_onnx(tmp_path_factory):
    import torch

    sys.path.insert(0, str(EXAMPLE))
    from yolo_tiny import build_model

    model = build_model()
    model.load_state_dict(torch.load(EXAMPLE / "yolo_tiny.pth"))
    path = tmp_path_factory.mktemp("e2e") / "yolo_e2e.onnx"
    torch.onnx.export(end_to_end(model.eval()), (torch.zeros(1, 3, 160, 160),), str(path), input_names=["images"],
                      output_names=["output0"], opset_version=17, dynamo=False)
    return path


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
    assert v["detections_kept"] >= 0.95
    image = EXAMPLE / "data" / "images" / "test" / "test_0007.jpg"
    snippet = tmp_path / "infer.py"
    int8lab("snippet", tmp_path / "model_int8.tflite", "-o", snippet)
    printed = subprocess.run([sys.executable, "-I", snippet, image], capture_output=True, text=True, check=True)
    expected = json.loads(int8lab("predict", tmp_path / "model_int8.tflite", image, "-o", tmp_path, "--json").stdout)[0]
    lines = [line.split() for line in printed.stdout.splitlines()[1:]]
    assert expected["detections"]
    assert [(w[0], float(w[1])) for w in lines] == [(d["label"], round(d["score"], 3)) for d in expected["detections"]]
