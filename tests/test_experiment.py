"""The lab on the real example model: a small grid, its files, its resume, its draws."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from int8lab.errors import UsageError
from int8lab.experiment import ExperimentConfig, build_grid, parse_sizes, prepare, run_experiment
from int8lab.report.experiment import write_report

SMALL = ExperimentConfig(calib_sizes="5,20", repeats=2, imbalanced_class="bag", latency_runs=5,
                         strategies=("random", "stratified"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory, fashion_model, fashion_dir, fashion_opts):
    out = tmp_path_factory.mktemp("lab")
    results = run_experiment(fashion_model, fashion_dir, out, fashion_opts, SMALL)
    write_report(results, out)
    return out, results


def test_sizes_are_counts_or_fractions_of_the_split():
    assert parse_sizes("10,50,100,300", 120) == [10, 50, 100, 120]
    assert parse_sizes("0.1,0.5", 300) == [30, 150]
    with pytest.raises(UsageError, match="--calib-sizes"):
        parse_sizes("ten", 100)


def test_grid_holds_float_modes_sweeps_and_the_single_class_variant():
    names = [v.name for v in build_grid([5, 20], 2, 42, "bag", 30, ("random", "stratified"))]
    assert names[:4] == ["fp32", "fp16", "dynamic", "int16x8"]
    assert "int8_random_n5_s43" in names and "int8_stratified_n20_s42" in names
    assert names[-1] == "int8_only-bag_n20" and len(names) == 4 + 2 * 2 * 2 + 1


@pytest.mark.slow
def test_run_writes_every_variant_and_the_report(lab):
    out, results = lab
    assert len(results["variants"]) == 13 and results["resumed"] == 0
    for row in results["variants"]:
        folder = out / "variants" / row["variant"]["name"]
        assert {"model.tflite", "model.tflite.json", "metrics.json", "confusion.png"} <= {
            p.name for p in folder.iterdir()}
    assert {"metrics.md", "summary.md", "results.json", "accuracy_vs_calibration_size.png"} <= {
        p.name for p in out.iterdir()}
    metrics = (out / "metrics.md").read_text()
    assert "int8 random n=5 | 2 |" in metrics and "int8, one class only (n=20)" in metrics


@pytest.mark.slow
def test_summary_answers_the_lab_questions(lab):
    summary = (lab[0] / "summary.md").read_text()
    for question in ("fp32 vs native", "Best int8 vs fp32", "Calibration size (random)",
                     "Single-class calibration", "Size."):
        assert question in summary


@pytest.mark.slow
def test_variant_figures_match_a_separate_validate(lab, fashion_model, fashion_dir, tmp_path):
    from int8lab.pipeline import validate_job
    from int8lab.sidecar import saved_spec

    out, results = lab
    row = next(r for r in results["variants"] if r["variant"]["name"] == "int8_random_n20_s42")
    model = out / "variants" / "int8_random_n20_s42" / "model.tflite"
    checked = validate_job(model, fashion_model, fashion_dir, saved_spec(model), "test", tmp_path, progress=False)
    assert checked["top1_agreement"] == row["top1_agreement"]
    assert checked["accuracy_quantized"] == row["accuracy"]
    assert checked["quantized"]["g_mean"] == row["g_mean"]


@pytest.mark.slow
def test_rerun_resumes_and_rebuilds_only_what_is_missing(lab, fashion_model, fashion_dir, fashion_opts):
    out, first = lab
    (out / "variants" / "fp16" / "metrics.json").unlink()
    again = run_experiment(fashion_model, fashion_dir, out, fashion_opts, SMALL)
    assert again["resumed"] == len(first["variants"]) - 1
    before = {r["variant"]["name"]: r["accuracy"] for r in first["variants"]}
    assert {r["variant"]["name"]: r["accuracy"] for r in again["variants"]} == before


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(lab, fashion_model, fashion_dir, fashion_opts):
    with pytest.raises(UsageError, match="other settings"):
        run_experiment(fashion_model, fashion_dir, lab[0], fashion_opts, replace(SMALL, repeats=3))


@pytest.mark.slow
def test_single_class_calibration_draws_that_class_only(lab):
    meta = json.loads((lab[0] / "variants" / "int8_only-bag_n20" / "model.tflite.json").read_text())
    assert meta["calibration"]["count"] == 20 and meta["calibration"]["strategy"] == "single-class"


@pytest.mark.slow
def test_the_cache_is_plain_npy_files_of_one_row_per_image(lab):
    """Written row by row, they load whole in numpy too: what a user inspects after a run."""
    cache = lab[0] / "cache"
    meta = json.loads((cache / "cache.json").read_text())
    calibration, images = np.load(cache / "calibration.npy"), np.load(cache / "eval.npy")
    native = np.load(cache / "native_outputs.npy")
    assert len(calibration) == len(meta["pool_sources"]) and len(images) == len(meta["eval_files"]) == len(native)
    assert calibration.shape[1:] == images.shape[1:] and native.shape[1:] == (10,)
    assert calibration.dtype == images.dtype == np.float32


def test_a_shared_cache_dir_is_made_again_for_other_settings(tmp_path, fashion_model, fashion_dir, fashion_opts):
    shared = replace(SMALL, cache_dir=str(tmp_path / "shared"))
    unit = prepare(fashion_model, fashion_dir, tmp_path / "a", fashion_opts, shared).eval_set.tensors[0:8]
    assert not (tmp_path / "a" / "cache").exists() and (tmp_path / "shared" / "eval.npy").is_file()
    tf = prepare(fashion_model, fashion_dir, tmp_path / "b", replace(fashion_opts, preset="tf"), shared)
    assert np.allclose(tf.eval_set.tensors[0:8], unit * 2 - 1, atol=1e-6)  # [0, 1] -> [-1, 1]


def test_pool_draws_what_the_generator_draws(tmp_path, fashion_model, fashion_dir, fashion_opts):
    from int8lab.data.generator import RepresentativeDataGenerator

    prepared = prepare(fashion_model, fashion_dir, tmp_path, fashion_opts, SMALL)
    spec, pool = prepared.spec, prepared.pool
    generator = RepresentativeDataGenerator(fashion_dir, num_samples=12, split="val", seed=3,
                                            strategy="stratified", spec=spec, progress=False)
    expected = np.concatenate(list(generator.generate_batches()))
    drawn = pool.draw("stratified", 3, 12)
    assert drawn == generator.selected
    assert np.array_equal(pool.tensors[[pool.rows[i] for i in drawn]], expected)


def test_a_variant_the_converter_refuses_is_reported_and_the_rest_is_built(tmp_path, photo_paths):
    """int16x8 has no HARD_SWISH kernel: that variant is listed with the reason, not a crash."""
    import shutil

    import keras
    from conftest import tiny_keras_model

    from int8lab.config import DataOptions

    for split in ("val", "test"):
        for k, name in enumerate(("a", "b", "c")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for j in range(2):
                photo = photo_paths[(2 * k + j) % len(photo_paths)]
                shutil.copy(photo, tmp_path / "data" / split / name / f"{j}{photo.suffix}")
    tiny_keras_model(keras.layers.Activation(keras.activations.hard_swish)).save(tmp_path / "hs.keras")
    config = ExperimentConfig(calib_sizes="4", repeats=1, latency_runs=2, strategies=("random",))
    results = run_experiment(tmp_path / "hs.keras", tmp_path / "data", tmp_path / "lab", DataOptions(quiet=True),
                             config)
    assert [f["group"] for f in results["failed"]] == ["int16x8"]
    assert "HARD_SWISH" in results["failed"][0]["error"]
    assert {r["group"] for r in results["variants"]} >= {"fp32", "fp16", "dynamic", "int8_random_n4"}
    write_report(results, tmp_path / "lab")
    assert "- int16x8: Quantization to 16x8-bit not yet supported for op: 'HARD_SWISH'." in (
        tmp_path / "lab" / "metrics.md").read_text()
    rerun = run_experiment(tmp_path / "hs.keras", tmp_path / "data", tmp_path / "lab", DataOptions(quiet=True), config)
    assert rerun["resumed"] == len(results["variants"]) + 1 and rerun["failed"] == results["failed"]
