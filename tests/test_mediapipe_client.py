"""MediaPipe Tasks as a real client: its own ImageClassifier and ObjectDetector run the models
int8lab wrote with --target mediapipe, and find what `int8lab predict` finds."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, int8lab, mediapipe_finds

from int8lab import imageops
from int8lab.runtime import LiteRTModel

mp = pytest.importorskip("mediapipe", reason="the mediapipe extra (make installs it)")


@pytest.mark.slow
def test_mediapipe_image_classifier_agrees_with_predict(tmp_path, mobilenet_model, fashion_dir):
    from mediapipe.tasks import python as tasks
    from mediapipe.tasks.python import vision

    model = tmp_path / "model_int8.tflite"
    int8lab("convert", mobilenet_model, "--data", fashion_dir, "--preset", "tf", "--backend", "aeq",
            "--target", "mediapipe", "-o", model, "-q")
    sidecar = json.loads((tmp_path / "model_int8.tflite.json").read_text())
    spec, labels = sidecar["preprocessing"], sidecar["labels"]
    assert sidecar["mode"] == "int8-float-io"
    # Integer kernels but for what XNNPACK runs in float only: its 19 hard-swishes and the softmax.
    assert {op.split(" ")[0] for op in sidecar["tflite"]["float_ops"]} == {"HARD_SWISH", "SOFTMAX"}
    refused = sidecar["range_corrections"]["float_for_xnnpack"]
    assert refused["kept"] and refused["count"] == len(sidecar["tflite"]["float_ops"]) == 20
    ours = LiteRTModel(model)
    files = sorted((fashion_dir / "test").glob("*/*.png"))
    agree = 0
    options = vision.ImageClassifierOptions(base_options=tasks.BaseOptions(model_asset_path=str(model)), max_results=1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in files:
            # MediaPipe gets the RGB pixels at model size (its own resize differs from Pillow's),
            # and normalises them itself, from the metadata.
            pixels = np.asarray(imageops.resize_image(imageops.decode_image(path, spec), spec).convert("RGB"))
            best = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels)))
            category = best.classifications[0].categories[0]
            top = int(ours.predict(imageops.load_tensor(path, spec)[None]).argmax())
            agree += category.index == top and category.category_name == labels[top]
    assert agree / len(files) >= 0.99, f"{agree} of {len(files)}"


@pytest.mark.slow
def test_mediapipe_object_detector_finds_what_predict_finds(tmp_path):
    """The example YOLO detector (ONNX) as MediaPipe's ObjectDetector takes it: two float outputs,
    DETECTOR_METADATA, labels; validated, predicted and drawn by int8lab from that very file."""
    example = ROOT / "examples" / "detect"
    out = tmp_path / "out"
    summary = json.loads(int8lab("quantize", example / "yolo_tiny.onnx", "--data", example / "data", "--input-size",
                                 "160", "160", "--io-layout", "nhwc", "--preset", "unit", "--resize", "stretch",
                                 "--target", "mediapipe", "-q", "--json", "-o", out).stdout)
    conversion, v = summary["conversion"], summary["validation"]
    assert [o["name"] for o in conversion["tflite"]["outputs"]] == ["location", "score"]
    assert conversion["task"]["layout"]["nms"] == "mediapipe" and conversion["target"]["form"]
    assert v["labelled"] and abs(v["map50_95"] - v["map50_95_reference"]) <= 0.01 and v["detections_kept"] >= 0.95
    cost = summary["mediapipe_cost"]
    assert cost["letterbox_map50_95"] > cost["mediapipe_float_map50_95"]  # 0.360 vs 0.291 measured
    assert "MediaPipe stretches" in (out / "report.md").read_text()
    images = sorted((example / "data" / "images" / "test").glob("*.jpg"))[:30]
    found, total = mediapipe_finds(out / "model_int8.tflite", images, tmp_path)
    assert total > 30 and found / total >= 0.9, f"{found} of {total}"  # 67 of 71 measured
    snippet = tmp_path / "infer.py"
    int8lab("snippet", out / "model_int8.tflite", "-o", snippet)
    printed = subprocess.run([sys.executable, "-I", snippet, images[7]], capture_output=True, text=True, check=True)
    expected = json.loads(int8lab("predict", out / "model_int8.tflite", images[7], "-o", tmp_path, "--json").stdout)[0]
    lines = [line.split() for line in printed.stdout.splitlines()[1:]]
    assert expected["detections"]
    assert [(w[0], float(w[1])) for w in lines] == [(d["label"], round(d["score"], 3)) for d in expected["detections"]]


def test_an_end_to_end_head_is_refused_for_mediapipe_with_the_reason():
    from int8lab.errors import UsageError
    from int8lab.model.mediapipe_detector import check_layout

    with pytest.raises(UsageError, match="end-to-end"):
        check_layout({"end_to_end": True})
