"""Latency of a .tflite through the LiteRT interpreter: warm-up, then timed runs."""

from __future__ import annotations

import time

import numpy as np

from int8lab.runtime import LiteRTModel


def measure_latency(model: LiteRTModel, runs: int = 50, warmup: int = 5) -> dict:
    """Milliseconds per invoke on a zero input of the model's own shape."""
    sample = np.zeros(model.input_shape, dtype=np.float32)
    for _ in range(warmup):
        model.invoke(sample)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.invoke(sample)
        times.append((time.perf_counter() - start) * 1000)
    return {"mean_ms": float(np.mean(times)), "p50_ms": float(np.percentile(times, 50)),
            "p90_ms": float(np.percentile(times, 90)), "runs": runs, "warmup": warmup,
            "threads": model.threads}
