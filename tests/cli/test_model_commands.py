"""`int8lab convert | validate | quantize | predict | snippet` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import check_html_report, int8lab


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, fashion_model, fashion_dir):
    """One `int8lab quantize --json` run on the example, shared by the tests below."""
    out = tmp_path_factory.mktemp("quantize")
    result = int8lab("quantize", fashion_model, "--data", fashion_dir, "-o", out, "--preset", "unit",
                     "-q", "--json")
    return out, json.loads(result.stdout)


@pytest.mark.slow
def test_quantize_json_is_clean_and_holds_the_figures(quantized):
    _, summary = quantized
    v = summary["validation"]
    assert {"top1_agreement", "accuracy_reference", "accuracy_quantized", "num_images"} <= set(v)
    assert v["num_images"] == 500 and v["top1_agreement"] >= 0.99
    assert summary["latency"]["int8"]["mean_ms"] > 0


@pytest.mark.slow
def test_the_html_report_shows_the_verdict_and_the_images(quantized, tmp_path):
    out, summary = quantized
    page = (out / "report.html").read_text()
    assert "top-1 agreement" in page and "Calibration images" in page and "Where the time goes" in page
    examples = summary["examples"]
    assert examples["task"] == "classify" and examples["pool"] == 48
    images = check_html_report(out / "report.html", tmp_path)
    assert len(images) >= 12 + len(examples["images"])  # the calibration strip, the examples, the confusion PNGs
    before = page
    assert int8lab("report", out).stdout.startswith("wrote") and (out / "report.html").read_text() == before


@pytest.mark.slow
def test_validate_on_the_quantize_output_gives_the_same_figures(quantized, fashion_model, fashion_dir, tmp_path):
    out, summary = quantized
    result = int8lab("validate", out / "model_int8.tflite", "--reference", fashion_model,
                     "--data", fashion_dir, "-o", tmp_path, "-q", "--json")
    again = json.loads(result.stdout)
    for key in ("top1_agreement", "accuracy_reference", "accuracy_quantized", "num_images"):
        assert again[key] == summary["validation"][key]
    assert (tmp_path / "report.md").is_file()
    assert "(as the model's sidecar records it)" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_validate_names_an_override_in_the_warnings_and_the_report(quantized, fashion_model, fashion_dir, tmp_path):
    out, summary = quantized
    result = int8lab("validate", out / "model_int8.tflite", "--reference", fashion_model, "--data", fashion_dir,
                     "--preset", "tf", "--override-preprocessing", "-o", tmp_path, "-q", "--json")
    again = json.loads(result.stdout)
    assert again["preprocessing"]["origin"] == "recorded, overridden"
    assert any("--preset tf" in w and "where the model has preset unit" in w for w in again["warnings"])
    assert again["top1_agreement"] != summary["validation"]["top1_agreement"]
    assert "**not** what the model's sidecar records" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_convert_prints_the_verdict_and_writes_the_sidecar(tmp_path, fashion_model, fashion_dir):
    result = int8lab("convert", fashion_model, "--data", fashion_dir, "-o", tmp_path / "m.tflite",
                     "--quantize", "uint8", "--preset", "unit", "--num-samples", 20, "-q")
    assert "input  uint8 [1, 28, 28, 1]" in result.stdout and "fully integer: yes" in result.stdout
    assert "calibration-size" in result.stderr  # 20 < 100 images: warned, not refused
    assert json.loads((tmp_path / "m.tflite.json").read_text())["mode"] == "uint8"


def test_convert_refuses_nchw_data_for_the_nhwc_model_with_exit_2(tmp_path, fashion_model, fashion_dir):
    result = int8lab("convert", fashion_model, "--data", fashion_dir, "-o", tmp_path / "m.tflite",
                     "--layout", "nchw", "--preset", "unit", "-q", check=False)
    assert result.returncode == 2 and "use --layout nhwc" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "m.tflite").exists()


def test_predict_and_snippet_use_the_saved_preprocessing(quantized, fashion_dir, tmp_path):
    out, _ = quantized
    image = sorted((fashion_dir / "test" / "sandal").iterdir())[0]
    shown = json.loads(int8lab("predict", out / "model_int8.tflite", image, "--top-k", 1, "--json").stdout)
    assert shown[0]["top"][0]["label"] == "sandal"
    int8lab("snippet", out / "model_int8.tflite", "-o", tmp_path / "infer.py")
    run = subprocess.run([sys.executable, tmp_path / "infer.py", image, "--top-k", "1"],
                         capture_output=True, text=True, check=True)
    assert run.stdout.split("\t")[1].startswith("sandal:")


@pytest.mark.slow
def test_quantize_takes_a_pytorch_state_dict_with_arch(tmp_path, fashion_dir):
    from conftest import TORCH_ARCH, TORCH_MODEL

    result = int8lab("quantize", TORCH_MODEL, "--arch", TORCH_ARCH, "--input-size", 28, 28, "--io-layout",
                     "nhwc", "--data", fashion_dir, "-o", tmp_path, "--preset", "unit", "-q", "--onnx", "--json")
    summary = json.loads(result.stdout)
    assert summary["conversion"]["tflite"]["inputs"][0]["shape"] == [1, 28, 28, 1]
    assert summary["validation"]["top1_agreement"] >= 0.99 and (tmp_path / "model.onnx").is_file()


def test_no_bias_correction_flag_reaches_the_quantizer_the_terminal_and_the_sidecar(tmp_path, fashion_dir):
    from conftest import TORCH_ARCH, TORCH_MODEL

    result = int8lab("quantize", TORCH_MODEL, "--arch", TORCH_ARCH, "--input-size", 28, 28, "--data", fashion_dir,
                     "-o", tmp_path, "--preset", "unit", "--num-samples", 20, "-q", "--no-bias-correction")
    assert "correction: input range from the preprocessing: [0, 1]" in result.stdout
    assert "correction: no bias correction: --no-bias-correction" in result.stdout
    sidecar = json.loads((tmp_path / "model_int8.tflite.json").read_text())
    assert sidecar["range_corrections"]["bias_correction"] == {"kept": False, "reason": "--no-bias-correction"}


def test_state_dict_without_arch_is_a_clear_error(tmp_path, fashion_dir):
    from conftest import TORCH_MODEL

    result = int8lab("convert", TORCH_MODEL, "--data", fashion_dir, "-o", tmp_path / "m.tflite", check=False)
    assert result.returncode == 2 and "--arch" in result.stderr and "Traceback" not in result.stderr


def test_convert_with_auto_preset_shows_the_candidates_and_its_pick(tmp_path, fashion_model, fashion_dir):
    result = int8lab("convert", fashion_model, "--data", fashion_dir, "-o", tmp_path / "m.tflite",
                     "--quantize", "dynamic", "--preset", "auto", "-q")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("--preset auto picked unit/rgb (by accuracy")
    assert [line.split()[0] for line in lines[1:5]] == ["unit", "tf", "raw", "imagenet"]
    assert lines[1].endswith("<- picked") and not any(line.endswith("<- picked") for line in lines[2:5])


def test_native_library_logs_stay_off_the_terminal(tmp_path, fashion_model, fashion_dir):
    """TensorFlow's absl lines and the converter's calibration line never reach a user's stderr."""
    result = int8lab("convert", fashion_model, "--data", fashion_dir, "-o", tmp_path / "m.tflite",
                     "--preset", "unit", "--num-samples", 100, "--target", "integer", "-q")
    assert result.stderr == "" and "fully integer: yes" in result.stdout


@pytest.mark.slow
def test_quantize_takes_the_integer_modes_and_refuses_the_others(tmp_path, fashion_model, fashion_dir):
    """The main job in float I/O (for a CPU) as `convert --quantize` makes it; float modes are
    `convert`'s, and `--max-drop` ranks layers in int8 only."""
    summary = json.loads(int8lab("quantize", fashion_model, "--data", fashion_dir, "--preset", "unit",
                                 "--quantize", "int8-float-io", "--compare-plans", "off", "-q", "--json", "-o",
                                 tmp_path).stdout)
    assert summary["conversion"]["mode"] == "int8-float-io"
    assert summary["conversion"]["tflite"]["inputs"][0]["dtype"] == "float32"
    assert summary["validation"]["top1_agreement"] >= 0.99
    for extra, message in ((("--quantize", "fp16"), "--quantize takes auto, int8, uint8"),
                           (("--quantize", "uint8", "--max-drop", "1"), "--max-drop and --min-agreement rank layers in int8")):
        result = int8lab("quantize", fashion_model, "--data", fashion_dir, "--preset", "unit", *extra,
                         "-o", tmp_path / "no", check=False)
        assert result.returncode == 2 and message in result.stderr and not (tmp_path / "no").exists()
