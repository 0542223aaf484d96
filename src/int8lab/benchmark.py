"""Size, parameters and latency of .tflite models through the LiteRT interpreter.

Several models are measured in one process, interleaved round by round, so a busy neighbour or a
CPU frequency change hurts them alike and the ratios stay fair.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from int8lab.preprocess import PreprocessSpec
from int8lab.runtime import LiteRTModel, delegation


def latency_sample(model: LiteRTModel, spec: PreprocessSpec | None = None, seed: int = 0) -> np.ndarray:
    """A float input of the model's shape with the values real pixels take through ``spec`` (the
    model's recorded preprocessing; [0, 1] without one), unlike zeros (which some kernels take
    faster) or values outside the int8 input's range (which saturate)."""
    pixels = np.random.default_rng(seed).random(model.input_shape, dtype=np.float32)
    if spec is None:
        return pixels
    axis = 1 if spec.layout == "nchw" else -1
    shape = [1] * pixels.ndim
    shape[axis] = -1
    mean, std = (np.asarray(v, np.float32).reshape(shape) for v in (spec.mean, spec.std))
    return ((pixels - mean) / std).astype(np.float32)


def summarise(times_ms: list[float], warmup: int, threads: int | None) -> dict:
    return {"mean_ms": float(np.mean(times_ms)), "p50_ms": float(np.percentile(times_ms, 50)),
            "p90_ms": float(np.percentile(times_ms, 90)), "runs": len(times_ms), "warmup": warmup,
            "threads": threads}


def measure_latency(model: LiteRTModel, runs: int = 50, warmup: int = 5) -> dict:
    """Milliseconds per invoke (input quantization included, as on a device)."""
    return bench_latencies([model], runs, warmup)[0]


def bench_latencies(models: list[LiteRTModel], runs: int = 50, warmup: int = 5,
                    specs: list[PreprocessSpec | None] | None = None) -> list[dict]:
    """Latency of each model, measured in interleaved rounds of one invoke per model, on inputs
    made through each one's ``specs`` entry."""
    samples = [latency_sample(m, spec) for m, spec in zip(models, specs or [None] * len(models))]
    for model, sample in zip(models, samples):
        for _ in range(warmup):
            model.invoke(sample)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(runs):
        for k, (model, sample) in enumerate(zip(models, samples)):
            start = time.perf_counter()
            model.invoke(sample)
            times[k].append((time.perf_counter() - start) * 1000)
    return [summarise(t, warmup, m.threads) for t, m in zip(times, models)]


def bench_models(paths: list[Path], threads: int | None = None, runs: int = 100, warmup: int = 10,
                 specs: list[PreprocessSpec | None] | None = None) -> list[dict]:
    """One row per model: size, parameters, I/O type, latency, where the time goes
    (int8lab.op_profile), and ratios to the first model; each model's inputs are made through its
    ``specs`` entry (its recorded preprocessing)."""
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.op_profile import op_profile, profile_summary

    contents = [Path(p).read_bytes() for p in paths]
    models = [LiteRTModel(c, threads) for c in contents]
    latencies = bench_latencies(models, runs, warmup, specs)
    rows = []
    for path, content, latency, model, spec in zip(paths, contents, latencies, models, specs or [None] * len(models)):
        info = inspect_tflite(content)
        rows.append({"model": str(path), "size_bytes": len(content),
                     "parameters": info.parameter_count, "input_dtype": info.inputs[0].dtype,
                     "fully_integer": info.fully_integer, "latency": latency,
                     "delegation": delegation(content, threads).as_dict(),
                     "profile": profile_summary(op_profile(content, latency_sample(model, spec), threads))})
    base = rows[0]
    for row in rows:
        row["size_vs_first"] = row["size_bytes"] / base["size_bytes"]
        row["speedup_vs_first"] = base["latency"]["mean_ms"] / row["latency"]["mean_ms"]
    return rows
