from __future__ import annotations

from int8lab.benchmark import bench_models


def test_bench_compares_models_against_the_first(fashion_fp32_tflite, fashion_int8):
    rows = bench_models([fashion_fp32_tflite, fashion_int8.path], runs=5, warmup=1)
    fp32, int8 = rows
    assert fp32["size_vs_first"] == 1.0 and fp32["speedup_vs_first"] == 1.0
    assert int8["size_vs_first"] < 0.4 and int8["input_dtype"] == "int8" and int8["fully_integer"]
    assert fp32["parameters"] == int8["parameters"] > 100_000
    assert int8["latency"]["runs"] == 5 and int8["latency"]["p50_ms"] > 0
