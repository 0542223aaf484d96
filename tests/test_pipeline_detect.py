"""A detector end to end, as a user runs it: the example's dynamic-axes ONNX export through
`int8lab quantize`, and the trap it avoids (one int8 scale for pixel boxes and scores)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, int8lab

EXAMPLE = ROOT / "examples" / "detect"
FLAGS = ("--data", EXAMPLE / "data", "--preset", "unit", "--resize", "letterbox", "--input-size", "160", "160",
         "-q", "--json")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    out = tmp_path_factory.mktemp("detector")
    result = int8lab("quantize", EXAMPLE / "yolo_tiny.onnx", *FLAGS, "-o", out)
    return out, json.loads(result.stdout)


@pytest.mark.slow
def test_dynamic_onnx_detector_quantizes_fully_integer_and_keeps_its_detections(quantized):
    out, summary = quantized
    v = summary["validation"]
    assert summary["conversion"]["tflite"]["fully_integer"]
    assert v["task"] == "detect" and v["num_images"] == 200 and v["labelled"]
    assert v["map50_vs_reference"] >= 0.95
    assert v["map50_drop_points"] <= 1.0
    assert v["detections_kept"] >= 0.95


@pytest.mark.slow
def test_sidecar_records_the_normalised_boxes_and_the_report_says_why(quantized):
    out, _ = quantized
    sidecar = json.loads((out / "model_int8.tflite.json").read_text())
    assert sidecar["task"]["layout"]["boxes"] == "normalized" and sidecar["task"]["names"][0] == "tshirt_top"
    assert json.loads((out / "model_fp32.tflite.json").read_text())["task"]["layout"]["boxes"] == "pixels"
    report = (out / "report.md").read_text()
    assert "mAP50" in report and "boxes divided by the input size" in report
    validation = json.loads((out / "validation.json").read_text())
    assert {"map50", "map50_95", "map50_vs_reference", "map50_95_vs_reference"} <= set(validation)


@pytest.mark.slow
def test_without_the_output_handling_int8_loses_the_detections(tmp_path):
    """The trap int8lab avoids by default: boxes (0-160 px) and scores (0-1) in one int8 scale."""
    result = int8lab("quantize", EXAMPLE / "yolo_tiny.onnx", *FLAGS, "--keep-box-units", "-o", tmp_path)
    summary = json.loads(result.stdout)
    assert summary["validation"]["detections_kept"] < 0.5
    assert any("--keep-box-units" in w for w in summary["warnings"])
