"""Calibration strategies and float fallback, measured on two real models with 5 seeds.

    .venv/bin/python bench/bench_calibration_strategies.py [--seeds 5] [--sizes 10,25,50,100]

For the example CNN (ReLU, [0,1]) and the MobileNetV3-Small (hard-swish, squeeze-excite, [-1,1])
shipped in examples/fashion: accuracy drop of full int8 against the float model on the 500 test
images, per calibration size and strategy (random / stratified / diverse k-center), mean and std
over the seeds; then what ``--max-drop 0.5`` recovers and how many layers it leaves in float.
The sweeps reuse `int8lab experiment` (same cache, same metrics).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from int8lab.config import DataOptions
from int8lab.experiment import ExperimentConfig, run_experiment
from int8lab.pipeline import quantize_job

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "fashion" / "data"
MODELS = {"example CNN (ReLU)": (ROOT / "examples" / "fashion" / "model.keras", DataOptions(preset="unit", quiet=True)),
          "MobileNetV3-Small (hard-swish)": (ROOT / "examples" / "fashion" / "mobilenetv3.keras",
                                            DataOptions(preset="tf", quiet=True))}
STRATEGIES = ("random", "stratified", "diverse")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", default="10,25,50,100")
    parser.add_argument("--budget", type=float, default=0.5)
    args = parser.parse_args()
    for name, (model, opts) in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            config = ExperimentConfig(calib_sizes=args.sizes, repeats=args.seeds, latency_runs=5,
                                      strategies=STRATEGIES)
            results = run_experiment(model, DATA, Path(tmp) / "lab", opts, config)
            float_accuracy = next(r for r in results["variants"] if r["variant"]["name"] == "fp32")["accuracy"]
            print(f"\n{name}: fp32 accuracy {100 * float_accuracy:.2f}% on {results['eval_images']} test images; "
                  f"accuracy drop of int8 (points, mean ± std over {args.seeds} seeds)")
            print(f"{'size':>6s} " + " ".join(f"{s:>16s}" for s in STRATEGIES))
            for size in results["sizes"]:
                cells = []
                for strategy in STRATEGIES:
                    drops = [100 * (float_accuracy - r["accuracy"]) for r in results["variants"]
                             if r["variant"]["strategy"] == strategy and r["variant"]["size"] == size]
                    cells.append(f"{np.mean(drops):7.2f} ± {np.std(drops):5.2f}")
                print(f"{size:6d} " + " ".join(f"{c:>16s}" for c in cells))
            summary = quantize_job(model, DATA, Path(tmp) / "recover", opts, max_drop=args.budget)
            r, v = summary["recovery"], summary["validation"]
            if "before" in r:
                print(f"--max-drop {args.budget}: full int8 {100 * r['before']['accuracy']:.2f}% -> "
                      f"{100 * v['accuracy_quantized']:.2f}% (float {100 * v['accuracy_reference']:.2f}%) with "
                      f"{len(r['float_tensors'])} layer(s) in float = {r['float_ops']} of {r['ops']} kernels "
                      f"({100 * r['float_op_fraction']:.1f}%); size {r['before']['size_bytes'] / 1024:.1f} -> "
                      f"{summary['sizes']['int8_tflite_bytes'] / 1024:.1f} KiB, latency "
                      f"{r['before']['latency']['mean_ms']:.3f} -> {summary['latency']['int8']['mean_ms']:.3f} ms")
            else:
                print(f"--max-drop {args.budget}: full int8 already within budget on the ranking set "
                      f"(drop {r['drop_before']:.2f} points); test accuracy {100 * v['accuracy_quantized']:.2f}% "
                      f"vs float {100 * v['accuracy_reference']:.2f}%")


if __name__ == "__main__":
    main()
