"""`int8lab bench` and `int8lab experiment` as a user runs them."""

from __future__ import annotations

import json

import pytest
from conftest import int8lab


def test_bench_json_lists_each_model_with_ratios(fashion_fp32_tflite, fashion_int8):
    rows = json.loads(int8lab("bench", fashion_fp32_tflite, fashion_int8.path, "--runs", 5,
                              "--threads", 1, "--json").stdout)
    assert [r["input_dtype"] for r in rows] == ["float32", "int8"]
    assert rows[1]["latency"]["threads"] == 1 and rows[0]["speedup_vs_first"] == 1.0


def test_bench_table_to_a_pipe_keeps_full_names_and_every_column(tmp_path, fashion_fp32_tflite, fashion_int8):
    deep = tmp_path / "a_rather_long_folder_name_for_the_models" / "and_another_level_below_it"
    deep.mkdir(parents=True)
    copy = deep / "model_int8_with_a_long_descriptive_name.tflite"
    copy.write_bytes(fashion_int8.path.read_bytes())
    out = int8lab("bench", fashion_fp32_tflite, copy, "--runs", 2, "--threads", 1).stdout
    assert str(copy) in out and "…" not in out
    assert all(column in out for column in ("size KiB", "fully int", "p90 ms", "speed-up"))


@pytest.mark.slow
def test_experiment_prints_the_summary_and_resumes(tmp_path, fashion_model, fashion_dir):
    args = ("experiment", fashion_model, "--data", fashion_dir, "-o", tmp_path, "--preset", "unit",
            "--calib-sizes", "8", "--repeats", 1, "--strategies", "random,diverse", "-q")
    first = int8lab(*args)
    assert "# Experiment summary" in first.stdout and "resumed" not in first.stdout
    assert "resumed: 7 variants" in int8lab(*args).stdout
