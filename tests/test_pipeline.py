"""convert_job, validate_job and quantize_job: real conversions of the example model."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace

import pytest

from int8lab.config import DataOptions
from int8lab.pipeline import NotFullyIntegerError, convert_job, quantize_job, validate_job
from int8lab.sidecar import saved_spec


def test_sidecar_json_describes_the_model(fashion_int8, fashion_model):
    meta = json.loads(fashion_int8.path.with_name("model_int8.tflite.json").read_text())
    assert meta["source_sha256"] == hashlib.sha256(fashion_model.read_bytes()).hexdigest()
    assert meta["mode"] == "int8"
    assert meta["tflite"]["inputs"][0]["dtype"] == "int8" and meta["tflite"]["fully_integer"] is True
    assert meta["tflite"]["size_bytes"] == fashion_int8.path.stat().st_size
    assert meta["tflite"]["op_histogram"]["CONV_2D"] == 5
    assert meta["preprocessing"]["input_size"] == [28, 28] and meta["preprocessing"]["preset"] == "unit"
    assert meta["calibration"]["count"] == 100 and meta["calibration"]["seed"] == 42
    assert meta["calibration"]["split"] == "val" and len(meta["calibration"]["files_sha256"]) == 64
    assert meta["labels"][:2] == ["ankle_boot", "bag"]
    assert set(meta["versions"]) >= {"tensorflow", "ai_edge_litert", "python"}
    assert meta["int8lab_version"]


def test_saved_spec_is_the_calibration_spec(fashion_int8):
    assert saved_spec(fashion_int8.path).as_dict() == fashion_int8.metadata["preprocessing"]


def test_same_seed_gives_the_same_calibration_and_the_same_model(tmp_path, fashion_int8, fashion_model,
                                                                 fashion_dir, fashion_opts):
    again = convert_job(fashion_model, fashion_dir, tmp_path / "again.tflite", fashion_opts, "int8")
    assert again.metadata["calibration"] == fashion_int8.metadata["calibration"]
    assert again.path.read_bytes() == fashion_int8.path.read_bytes()


def test_another_seed_draws_other_calibration_files(tmp_path, fashion_int8, fashion_model, fashion_dir):
    other = convert_job(fashion_model, fashion_dir, tmp_path / "other.tflite",
                        DataOptions(preset="unit", seed=7, quiet=True), "int8")
    assert other.metadata["calibration"]["files_sha256"] != fashion_int8.metadata["calibration"]["files_sha256"]


def test_an_op_with_no_integer_kernel_stays_float_and_is_named_or_with_integer_only_refused(tmp_path, photo):
    import keras
    from conftest import tiny_keras_model

    tiny_keras_model(keras.layers.Lambda(keras.ops.sin)).export(tmp_path / "sin", verbose=False)
    (tmp_path / "imgs").mkdir()
    photo.save(tmp_path / "imgs" / "a.jpg")
    out = tmp_path / "out"
    with pytest.raises(NotFullyIntegerError, match="SIN"):
        convert_job(tmp_path / "sin", tmp_path / "imgs", out / "m.tflite",
                    DataOptions(input_size=(16, 16), quiet=True, integer_only=True), "int8")
    assert not out.exists() or list(out.iterdir()) == []
    kept = convert_job(tmp_path / "sin", tmp_path / "imgs", out / "m.tflite", DataOptions(input_size=(16, 16),
                                                                                        quiet=True), "int8")
    said = [f.message for f in kept.warnings if f.check == "float-ops"]
    assert said and "SIN" in said[0] and "--integer-only" in said[0] and not kept.info.fully_integer


def test_failed_conversion_keeps_the_previous_model_whole(tmp_path, fashion_model, fashion_dir):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"previous model")
    with pytest.raises(Exception):
        convert_job(fashion_model, fashion_dir, target, DataOptions(layout="nchw", quiet=True))
    assert target.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


def test_labels_file_names_the_classes(tmp_path, fashion_model, fashion_dir, fashion_opts):
    names = [f"class_{i}" for i in range(10)]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    result = convert_job(fashion_model, fashion_dir, tmp_path / "m.tflite", fashion_opts, "dynamic",
                         labels_file=tmp_path / "labels.txt")
    assert result.metadata["labels"] == names and result.metadata["calibration"] is None


def test_validate_job_writes_metrics_pngs_and_report(tmp_path, fashion_int8, fashion_model, fashion_dir):
    results = validate_job(fashion_int8.path, fashion_model, fashion_dir, saved_spec(fashion_int8.path),
                           "test", tmp_path, progress=False)
    assert results["num_images"] == 500 and results["top1_agreement"] >= 0.99
    assert 0.85 < results["accuracy_reference"] <= 1 and len(results["quantized"]["per_class"]) == 10
    assert {p.name for p in tmp_path.iterdir()} == {"validation.json", "report.md", "report.html",
                                                    "confusion_reference.png", "confusion_quantized.png"}
    assert (tmp_path / "confusion_quantized.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_quantize_meets_the_example_targets(tmp_path, fashion_model, fashion_dir, fashion_opts):
    """Acceptance: agreement >= 99 %, accuracy drop <= 0.5 points, size <= 40 % of fp32."""
    summary = quantize_job(fashion_model, fashion_dir, tmp_path, replace(fashion_opts, compare_plans="on"))
    v = summary["validation"]
    assert v["top1_agreement"] >= 0.99
    assert v["accuracy_drop_points"] <= 0.5
    assert summary["sizes"]["int8_vs_fp32"] <= 0.40
    # The CPU plan: every op in XNNPACK, float I/O; the integer plan beside it, measured.
    assert summary["conversion"]["mode"] == "int8-float-io" and not summary["delegation"]["int8"]["fallback"]
    other = summary["other_plan"]
    assert other["target"] == "integer" and other["mode"] == "int8" and other["fully_integer"]
    assert other["metrics"]["top1_agreement"] >= 0.99 and (tmp_path / "plan_integer" / "model_int8.tflite").exists()
    report = (tmp_path / "report.md").read_text()
    assert "## Precision plan" in report and "## Where the time goes" in report
    assert set(summary["profile"]) == {"fp32", "int8", "integer plan"}
    assert v["split"] == "test" and summary["conversion"]["calibration"]["split"] == "val"
    report = (tmp_path / "report.md").read_text()
    assert "top-1 agreement" in report and "latency" in report
    assert {"model_int8.tflite", "model_int8.tflite.json", "model_fp32.tflite", "report.md",
            "summary.json", "validation.json"} <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.slow
def test_pytorch_state_dict_meets_the_targets_and_writes_onnx(tmp_path, torch_options, fashion_dir, fashion_opts):
    """Issue acceptance: every op in XNNPACK, agreement >= 99 %, accuracy drop <= 1 point."""
    from conftest import TORCH_MODEL

    from int8lab.model.source import load_model_source

    summary = quantize_job(load_model_source(TORCH_MODEL, torch_options), fashion_dir, tmp_path,
                           fashion_opts, onnx=True)
    v = summary["validation"]
    assert not summary["delegation"]["int8"]["fallback"]
    assert v["top1_agreement"] >= 0.99 and v["accuracy_drop_points"] <= 1.0
    assert summary["conversion"]["backend"] == "litert-torch + ai-edge-quantizer"
    assert (tmp_path / "model.onnx").stat().st_size > 100_000
    report = (tmp_path / "report.md").read_text()
    assert "## Range and bias corrections" in report
    assert "- input range from the preprocessing: [0, 1]" in report
    assert "- bias correction of 6 layers, kept: relative output error on 25 calibration images" in report


@pytest.mark.slow
def test_onnx_model_meets_the_targets(tmp_path, torch_onnx, fashion_dir, fashion_opts):
    summary = quantize_job(torch_onnx, fashion_dir, tmp_path, fashion_opts)
    v = summary["validation"]
    assert not summary["delegation"]["int8"]["fallback"]
    assert v["top1_agreement"] >= 0.99 and v["accuracy_drop_points"] <= 1.0


@pytest.mark.slow
def test_keras_model_through_the_aeq_backend(tmp_path, fashion_model, fashion_dir, fashion_opts):
    from int8lab.model.source import ModelOptions, load_model_source

    source = load_model_source(fashion_model, ModelOptions(backend="aeq"))
    result = convert_job(source, fashion_dir, tmp_path / "m.tflite", fashion_opts, "int8")
    assert result.info.fully_integer and result.metadata["backend"].endswith("ai-edge-quantizer")
    checked = validate_job(result.path, fashion_model, fashion_dir, saved_spec(result.path), "test",
                           tmp_path / "v", progress=False)
    assert checked["top1_agreement"] >= 0.99


def test_diagnose_job_writes_the_ranked_table_csv_and_chart(tmp_path, fashion_model, fashion_dir, fashion_opts):
    from int8lab.pipeline import diagnose_job

    rows = diagnose_job(fashion_model, fashion_dir, tmp_path, fashion_opts)
    assert {p.name for p in tmp_path.iterdir()} == {"layers.md", "layers.csv", "layers.png", "model_int8.tflite",
                                                 "layers_node_data.json"}
    csv_lines = (tmp_path / "layers.csv").read_text().splitlines()
    assert csv_lines[0].startswith("op,tensor,rmse_over_scale") and len(csv_lines) == len(rows) + 1
    assert "| 1 | " in (tmp_path / "layers.md").read_text()
    from ai_edge_litert.interpreter import Interpreter

    names = {t["name"] for t in Interpreter(str(tmp_path / "model_int8.tflite")).get_tensor_details()}
    assert set(json.loads((tmp_path / "layers_node_data.json").read_text())["results"]) <= names


def test_diagnose_overlay_names_tensors_of_the_model_it_comes_with(tmp_path, torch_options, fashion_dir,
                                                                   fashion_opts):
    """Model Explorer matches the overlay's keys to the output tensors of the graph it shows."""
    from ai_edge_litert.interpreter import Interpreter

    from int8lab.model.source import load_model_source
    from int8lab.pipeline import diagnose_job

    rows = diagnose_job(load_model_source(__import__("conftest").TORCH_MODEL, torch_options), fashion_dir, tmp_path,
                        fashion_opts)
    overlay = json.loads((tmp_path / "layers_node_data.json").read_text())
    names = {t["name"] for t in Interpreter(str(tmp_path / "model_int8.tflite")).get_tensor_details()}
    assert set(overlay["results"]) <= names and len(overlay["results"]) == len(rows)
    assert overlay["results"][rows[0].tensor]["value"] == pytest.approx(rows[0].rmse_over_scale, abs=1e-6)


def test_diagnose_job_ranks_a_pytorch_model_side_by_side(tmp_path, torch_options, fashion_dir, fashion_opts):
    from conftest import TORCH_MODEL

    from int8lab.model.source import load_model_source
    from int8lab.pipeline import diagnose_job

    rows = diagnose_job(load_model_source(TORCH_MODEL, torch_options), fashion_dir, tmp_path, fashion_opts)
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {r.op for r in rows}
    assert len((tmp_path / "layers.csv").read_text().splitlines()) == len(rows) + 1
    assert "side by side" in (tmp_path / "layers.md").read_text() and (tmp_path / "layers.png").is_file()


@pytest.mark.slow
def test_max_drop_met_by_full_int8_leaves_nothing_float(tmp_path, fashion_model, fashion_dir, fashion_opts):
    summary = quantize_job(fashion_model, fashion_dir, tmp_path, replace(fashion_opts, target="integer"), max_drop=1.0)
    assert summary["recovery"]["float_tensors"] == [] and "before" not in summary["recovery"]
    assert summary["conversion"]["tflite"]["fully_integer"] and not (tmp_path / "model_int8_full.tflite").exists()
    assert "Full int8 meets the budget" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_max_drop_recovers_the_badly_quantizing_model(tmp_path, mobilenet_model, fashion_dir):
    """Issue acceptance: the budget holds on the ranking set with at most 10 % of kernels in float."""
    summary = quantize_job(mobilenet_model, fashion_dir, tmp_path, DataOptions(preset="tf", quiet=True, target="integer"),
                           max_drop=0.5)
    r = summary["recovery"]
    assert r["drop_before"] > 0.5 >= r["drop_after"]
    assert 0 < r["float_op_fraction"] <= 0.10 and len(r["float_tensors"]) == r["float_ops"]
    assert summary["validation"]["accuracy_quantized"] >= r["before"]["accuracy_quantized"]
    assert not summary["conversion"]["tflite"]["fully_integer"]
    assert (tmp_path / "model_int8_full.tflite").is_file() and (tmp_path / "layers.csv").is_file()
    assert "Accuracy recovery" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_plain_folder_is_divided_into_calibration_and_held_out(tmp_path, fashion_model, fashion_dir, fashion_opts):
    """No split folders: a seeded half calibrates, the other half validates, and none is in both."""
    plain = tmp_path / "plain"
    plain.mkdir()
    for photo in sorted((fashion_dir / "test").glob("*/*.png"))[:40]:
        shutil.copy(photo, plain / f"{photo.parent.name}_{photo.name}")
    summary = quantize_job(fashion_model, plain, tmp_path / "out", fashion_opts)
    assert summary["data_parts"] == {"calibration_images": 20, "held_out_images": 20, "how": "seeded",
                                     "why": "has no split folders"}
    calibration = summary["conversion"]["calibration"]
    assert calibration["split"] == "@calibration" and calibration["count"] == 20
    assert summary["validation"]["split"] == "@held-out" and summary["validation"]["num_images"] == 20
    assert "divided into 20 calibration and 20 held-out images" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_min_agreement_keeps_the_layers_in_float_that_top1_agreement_needs(tmp_path, mobilenet_model, fashion_dir):
    """--min-agreement 0.99 on the integer plan of MobileNetV3-Small (97.6% held out without it)."""
    summary = quantize_job(mobilenet_model, fashion_dir, tmp_path, DataOptions(preset="tf", quiet=True, target="integer"),
                           min_agreement=0.99)
    r = summary["recovery"]
    assert r["metric"] == "top-1 agreement" and r["budget_points"] == pytest.approx(1.0)
    assert r["drop_before"] > r["budget_points"] >= r["drop_after"] and r["float_tensors"]
    assert r["min_agreement"]["required"] == 0.99 and r["min_agreement"]["held_out"] == summary["validation"]["top1_agreement"]
    assert "`--min-agreement 0.99`: top-1 agreement on the held-out images" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("task, agreement, words", [("detect", 0.99, "classifier's top-1 agreement"),
                                                   ("classify", 1.5, "in \\(0, 1\\]")])
def test_min_agreement_says_where_it_does_not_apply(task, agreement, words):
    from int8lab.diagnose import budgets
    from int8lab.errors import UsageError

    with pytest.raises(UsageError, match=words):
        budgets(None, None, {"name": task}, None, False, None, agreement)
