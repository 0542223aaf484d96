"""The two int8 back ends side by side on the example model, in one process.

    .venv/bin/python bench/bench_backends.py [--runs 300]

TF's converter (from the Keras model) vs ai-edge-quantizer (on the float .tflite), both full int8
with int8 I/O, calibrated on the same 100 images (seed 42) of examples/fashion/data/val and
validated on the 500 held-out test images. Also the PyTorch example (litert-torch +
ai-edge-quantizer) when the torch extra is installed. Latency: LiteRT, interleaved rounds; the
ratios are against the fp32 .tflite measured in the same rounds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from int8lab.benchmark import bench_latencies
from int8lab.config import DataOptions
from int8lab.model.source import ModelOptions, load_model_source
from int8lab.pipeline import convert_job, validate_job
from int8lab.sidecar import saved_spec
from int8lab.runtime import LiteRTModel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fashion"


def variants():
    yield "Keras -> TF converter", EXAMPLE / "model.keras", ModelOptions(backend="converter")
    yield "Keras -> fp32 .tflite -> ai-edge-quantizer", EXAMPLE / "model.keras", ModelOptions(backend="aeq")
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        return
    yield ("PyTorch -> litert-torch -> ai-edge-quantizer", EXAMPLE / "model_torch.pth",
           ModelOptions(arch=f"{EXAMPLE / 'fashion_torch.py'}:build_model", input_size=(28, 28), io_layout="nhwc"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    opts = DataOptions(preset="unit", quiet=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, model, options) in enumerate(variants()):
            source = load_model_source(model, options)
            fp32 = convert_job(source, None, Path(tmp) / f"{k}_fp32.tflite", opts, "none")
            int8 = convert_job(source, EXAMPLE / "data", Path(tmp) / f"{k}_int8.tflite", opts, "int8")
            result = validate_job(int8.path, source, EXAMPLE / "data", saved_spec(int8.path), "test",
                                  Path(tmp) / f"{k}_validation", progress=False)
            rows.append((name, fp32, int8, result))
        models = [LiteRTModel(m.path, threads=1) for _, fp32, int8, _ in rows for m in (fp32, int8)]
        latency = bench_latencies(models, args.runs, warmup=20)
    print(f"{'path':46s} {'fp32 acc':>8s} {'int8 acc':>8s} {'agree':>7s} {'fully int':>9s} "
          f"{'int8 KiB':>8s} {'size vs fp32':>12s} {'int8 ms':>8s} {'speed-up vs fp32':>16s}")
    for k, (name, fp32, int8, result) in enumerate(rows):
        fp32_ms, int8_ms = latency[2 * k]["mean_ms"], latency[2 * k + 1]["mean_ms"]
        print(f"{name:46s} {100 * result['accuracy_reference']:7.2f}% {100 * result['accuracy_quantized']:7.2f}% "
              f"{100 * result['top1_agreement']:6.2f}% {'yes' if int8.info.fully_integer else 'no':>9s} "
              f"{int8.info.size_bytes / 1024:8.1f} {int8.info.size_bytes / fp32.info.size_bytes:11.1%} "
              f"{int8_ms:8.3f} {fp32_ms / int8_ms:15.2f}x")


if __name__ == "__main__":
    main()
