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


@pytest.mark.slow
def test_experiment_prints_the_summary_and_resumes(tmp_path, fashion_model, fashion_dir):
    args = ("experiment", fashion_model, "--data", fashion_dir, "-o", tmp_path, "--preset", "unit",
            "--calib-sizes", "8", "--repeats", 1, "--strategies", "random,diverse", "-q")
    first = int8lab(*args)
    assert "# Experiment summary" in first.stdout and "resumed" not in first.stdout
    assert "resumed: 7 variants" in int8lab(*args).stdout
