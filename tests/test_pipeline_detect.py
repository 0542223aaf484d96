"""A detector end to end, as a user runs it: the example's dynamic-axes ONNX export through
`int8lab quantize`, and the trap it avoids (one int8 scale for pixel boxes and scores)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT, int8lab
from labelled_sets import write_coco, write_voc

EXAMPLE = ROOT / "examples" / "detect"
FLAGS = ("--data", EXAMPLE / "data", "--preset", "unit", "--resize", "letterbox", "--input-size", "160", "160",
         "--compare-plans", "off", "-q", "--json")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    out = tmp_path_factory.mktemp("detector")
    result = int8lab("quantize", EXAMPLE / "yolo_tiny.onnx", *FLAGS, "--target", "integer", "-o", out)
    return out, json.loads(result.stdout)


@pytest.mark.slow
def test_dynamic_onnx_detector_quantizes_integer_but_its_decode_tail_and_keeps_its_detections(quantized):
    out, summary = quantized
    v = summary["validation"]
    head = summary["conversion"]["range_corrections"]["detector_head"]
    float_ops = summary["conversion"]["tflite"]["float_ops"]
    assert head["chosen"] != "full int8" and float_ops
    assert head["dynamic_range"] is None  # int8 I/O: every activation int8, no dynamic-range candidate
    assert {op.split(" (", 1)[1][:-1] for op in float_ops} <= set(head["float_tensors"])
    assert max(c["score"] for c in head["candidates"]) == next(
        c["score"] for c in head["candidates"] if c["name"] == head["chosen"])
    assert summary["conversion"]["tflite"]["inputs"][0]["dtype"] == "int8"
    assert summary["conversion"]["tflite"]["outputs"][0]["dtype"] == "float32"
    assert v["task"] == "detect" and v["num_images"] == 200 and v["labelled"]
    assert v["map50_vs_reference"] >= 0.97
    assert abs(v["map50_95"] - v["map50_95_reference"]) <= 0.01
    assert v["detections_kept"] >= 0.93
    report = (out / "report.md").read_text()
    assert "fully integer apart from the detector's decode tail" in report and "detector head:" in report


def test_integer_only_takes_no_dynamic_range_candidate():
    """--integer-only refuses float kernels: the head search then measures no body with float activations."""
    from int8lab.config import DataOptions
    from int8lab.pipeline import head_score

    task = {"name": "detect", "layout": {"channel_axis": 1, "num_classes": 10, "input_size": [160, 160]}}
    assert head_score(task, DataOptions()).dynamic_range
    assert not head_score(task, DataOptions(integer_only=True)).dynamic_range
    assert head_score(task, DataOptions(head_precision="int8")) is None


@pytest.mark.slow
def test_validate_takes_the_recorded_preprocessing_and_split(quantized, tmp_path):
    """No preprocessing flags, or only some of them, give quantize's figures exactly: the sidecar
    records 160x160 letterbox, preset unit; a flag that disagrees is refused before any work."""
    out, summary = quantized
    model = out / "model_int8.tflite"
    for flags in ((), ("--input-size", "160", "160")):
        again = json.loads(int8lab("validate", model, "--reference", EXAMPLE / "yolo_tiny.onnx",
                                   "--data", EXAMPLE / "data", *flags, "-o", tmp_path, "-q", "--json").stdout)
        assert again["split"] == summary["validation"]["split"] == "test"
        assert again["preprocessing"]["origin"] == "recorded"
        for key in ("map50_95", "map50_95_reference", "detections_kept", "num_images"):
            assert again[key] == summary["validation"][key]
    refused = int8lab("validate", model, "--reference", EXAMPLE / "yolo_tiny.onnx", "--data", EXAMPLE / "data",
                      "--resize", "stretch", "-o", tmp_path, "-q", check=False)
    assert refused.returncode == 2 and "--resize stretch where the model has letterbox" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_the_same_labels_as_coco_json_or_pascal_voc_give_the_same_figures(quantized, tmp_path):
    """The example's YOLO test labels written as a COCO set (category ids 2, 5, 8, ...) and as a VOC
    set: validate finds the layout and the split and scores exactly what it scores on YOLO txt."""
    out, summary = quantized
    for layout, write in (("coco", write_coco), ("voc", write_voc)):
        again = json.loads(int8lab("validate", out / "model_int8.tflite", "--reference", EXAMPLE / "yolo_tiny.onnx",
                                   "--data", write(tmp_path / layout), "-o", tmp_path / f"{layout}_out", "-q",
                                   "--json").stdout)
        assert again["split"] == "test" and again["labelled"]
        for key in ("map50", "map50_95", "map50_95_reference", "detections_kept", "num_images"):
            assert again[key] == pytest.approx(summary["validation"][key], abs=1e-12), (layout, key)


@pytest.mark.slow
def test_a_float_tflite_detector_keeps_its_detections_without_a_graph_rewrite(quantized, tmp_path):
    """A float .tflite cannot be rewritten like a PyTorch graph: the decode tail left in float
    keeps its boxes and scores apart (full int8 of it crushes the scores in one output scale)."""
    out, _ = quantized
    summary = json.loads(int8lab("quantize", out / "model_fp32.tflite", *FLAGS[:-7], "-q", "--json",
                                 "-o", tmp_path).stdout)
    head = summary["conversion"]["range_corrections"]["detector_head"]
    assert head["chosen"] != "full int8" and summary["conversion"]["task"]["layout"]["boxes"] == "pixels"
    assert summary["validation"]["detections_kept"] >= 0.93
    assert not any("round every score" in w for w in summary["warnings"])
    assert summary["cpu"]["model"]


@pytest.mark.slow
def test_calibration_images_without_any_of_its_objects_keep_the_detections(tmp_path):
    """Generic photos (no garment in them) calibrate; the held-out garment images still keep
    their detections: no score range stops below the logits of real detections."""
    data = tmp_path / "data"
    (data / "images" / "val").mkdir(parents=True)
    for photo in sorted((ROOT / "tests" / "assets" / "photos").glob("*.*")):
        if photo.suffix.lower() in (".jpg", ".png"):
            (data / "images" / "val" / photo.name).symlink_to(photo)
    for part in ("images", "labels"):
        (data / part / "test").parent.mkdir(exist_ok=True)
        (data / part / "test").symlink_to(EXAMPLE / "data" / part / "test")
    (data / "data.yaml").write_text((EXAMPLE / "data" / "data.yaml").read_text())
    result = int8lab("quantize", EXAMPLE / "yolo_tiny.onnx", *FLAGS[2:], "--data", data, "-o", tmp_path / "out")
    summary = json.loads(result.stdout)
    assert summary["conversion"]["calibration"]["count"] == 7
    assert summary["validation"]["detections_kept"] >= 0.9


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
    result = int8lab("quantize", EXAMPLE / "yolo_tiny.onnx", *FLAGS, "--keep-box-units", "--head-precision", "int8",
                     "-o", tmp_path)
    summary = json.loads(result.stdout)
    assert summary["validation"]["detections_kept"] < 0.75
    assert summary["validation"]["map50_vs_reference"] < 0.75
    assert any("--keep-box-units" in w for w in summary["warnings"])


@pytest.mark.slow
def test_predict_prints_and_draws_the_boxes(quantized, tmp_path):
    out, _ = quantized
    image = EXAMPLE / "data" / "images" / "test" / "test_0003.jpg"
    result = json.loads(int8lab("predict", out / "model_int8.tflite", image, "-o", tmp_path, "--json").stdout)[0]
    assert result["detections"] and result["detections"][0]["label"] == "trouser"
    assert (tmp_path / "test_0003_boxes.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_the_html_report_shows_float_and_int8_boxes_side_by_side(quantized, tmp_path):
    from conftest import check_html_report

    out, summary = quantized
    examples = summary["examples"]
    assert examples["task"] == "detect" and len(examples["images"]) >= 4
    assert examples["images"][0]["difference"] >= examples["images"][-1]["difference"]
    page = (out / "report.html").read_text()
    assert page.count('alt="float detections"') == page.count('alt="int8 detections"') >= 4
    check_html_report(out / "report.html", tmp_path)


@pytest.mark.slow
def test_predict_writes_nothing_unless_asked(quantized, tmp_path):
    """No drawn images in the user's working folder: --json prints JSON only, and -o DIR draws."""
    out, _ = quantized
    image = EXAMPLE / "data" / "images" / "test" / "test_0003.jpg"
    (tmp_path / "work").mkdir()
    for extra in (("--json",), ()):
        result = int8lab("predict", out / "model_int8.tflite", image, *extra, cwd=tmp_path / "work")
        assert list((tmp_path / "work").iterdir()) == []
    assert json.loads(int8lab("predict", out / "model_int8.tflite", image, "--json").stdout)[0]["detections"]
    assert "detections" in result.stdout and "drawn" not in result.stdout


@pytest.mark.slow
def test_detector_snippet_finds_what_predict_finds_without_int8lab(quantized, tmp_path):
    import subprocess
    import sys

    out, _ = quantized
    image = EXAMPLE / "data" / "images" / "test" / "test_0007.jpg"
    snippet = tmp_path / "infer.py"
    int8lab("snippet", out / "model_int8.tflite", "-o", snippet)
    assert not re.search(r"^\s*(import|from) int8lab", snippet.read_text(), re.MULTILINE)
    printed = subprocess.run([sys.executable, "-I", snippet, image], capture_output=True, text=True, check=True)
    expected = json.loads(int8lab("predict", out / "model_int8.tflite", image, "-o", tmp_path, "--json").stdout)[0]
    lines = [line.split() for line in printed.stdout.splitlines()[1:]]
    assert [(w[0], float(w[1])) for w in lines] == [(d["label"], round(d["score"], 3)) for d in expected["detections"]]


@pytest.mark.slow
def test_experiment_on_a_detector_reports_map_columns(tmp_path):
    int8lab("experiment", EXAMPLE / "yolo_tiny.onnx", *FLAGS[:-1], "-o", tmp_path, "--calib-sizes", "10",
            "--repeats", "1", "--strategies", "random")
    metrics = (tmp_path / "metrics.md").read_text()
    assert "mAP50 %" in metrics and "float detections kept %" in metrics and "accuracy %" not in metrics
    results = json.loads((tmp_path / "results.json").read_text())
    int8 = next(r for r in results["variants"] if r["variant"]["mode"] == "int8")
    assert int8["map50_vs_reference"] >= 0.95
    assert json.loads((tmp_path / "variants" / int8["variant"]["name"] / "model.tflite.json").read_text()
                      )["task"]["layout"]["boxes"] == "normalized"


@pytest.mark.slow
def test_max_drop_scores_the_int8_detector_against_the_float_one_on_disk(tmp_path, monkeypatch):
    """The ranking split and the float outputs wait in TMPDIR while the candidates are scored,
    and are gone afterwards; full int8 keeps >= 95% of the float model's mAP50 there too."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    result = int8lab("quantize", EXAMPLE / "yolo_tiny.onnx", *FLAGS, "--max-drop", "5", "-o", tmp_path / "out")
    recovery = json.loads(result.stdout)["recovery"]
    assert recovery["metric"] == "mAP50-95 against the float model" and recovery["ranking_images"] == 120
    assert 0 <= recovery["drop_before"] <= 5 and recovery["float_tensors"] == []
    assert not list(scratch.glob("int8lab-*"))  # other libraries keep their own caches there
