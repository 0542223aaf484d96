"""Detector int8 in one process: int8lab's default against plain min/max int8 with no output
handling, and against ONNX Runtime's static int8, on the same model and images.

    .venv/bin/python bench/bench_detector.py [--model examples/detect/yolo_tiny.onnx]

The model: the example detector as Ultralytics exports (ONNX, dynamic axes, one output
[1, 4 + classes, anchors] of pixel boxes and sigmoid scores). Every int8 variant is calibrated on
the same 100 images (seed 42) of examples/detect/data/images/val and scored on the 200 held-out
images of images/test with the same streaming evaluation: mAP against the YOLO labels, mAP of
the int8 model against the float model's own detections (score >= 0.25), and the share of the
float model's detections it keeps. Latency: LiteRT (or ONNX Runtime for its own model), warm-up,
interleaved rounds, median; ratios against the float model in the same runtime.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from anchors import OrtModel, ort_static_int8

from int8lab.config import DataOptions
from int8lab.model.source import ModelOptions, load_model_source
from int8lab.pipeline import convert_job, validate_job
from int8lab.runtime import LiteRTModel
from int8lab.tasks.detect import dataset_names, evaluate, labelled_split, resolve_layout

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "detect"


def median_latency(models, sample: np.ndarray, rounds: int = 5, runs: int = 20) -> list[float]:
    """Median ms per image, interleaving the models round by round after a warm-up."""
    times = [[] for _ in models]
    for model in models:
        for _ in range(5):
            model.predict(sample)
    for _ in range(rounds):
        for k, model in enumerate(models):
            start = time.perf_counter()
            for _ in range(runs):
                model.predict(sample)
            times[k].append(1000 * (time.perf_counter() - start) / runs)
    return [float(np.median(t)) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=EXAMPLE / "yolo_tiny.onnx")
    parser.add_argument("--data", type=Path, default=EXAMPLE / "data")
    parser.add_argument("--input-size", type=int, nargs=2, default=(160, 160))
    args = parser.parse_args()
    size = tuple(args.input_size)
    opts = DataOptions(preset="unit", resize="letterbox", input_size=size, num_samples=100, quiet=True)
    source = load_model_source(args.model, ModelOptions(input_size=size))
    spec = opts.spec(source.input)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        float_model = out / "fp32.tflite"
        convert_job(source, args.data, float_model, opts, "none")
        for name, variant in (("int8lab default (boxes normalised before the concat)", opts),
                              ("plain min/max int8, no output handling (--keep-box-units)",
                               replace(opts, normalise_boxes=False))):
            path = out / f"{len(rows)}.tflite"
            convert_job(source, args.data, path, variant, "int8")
            results = validate_job(path, source, args.data, spec, "test", out / f"{len(rows)}")
            rows.append((name, results, LiteRTModel(path)))
        ort_path = ort_static_int8(args.model, opts.generator(args.data, spec).generate_batches(), out / "ort_int8.onnx")
        names = dataset_names(args.data)
        generator = opts.generator(args.data, spec, split="test", num_samples=None)
        files = [str(f) for f in generator.index.files]
        layout = resolve_layout(tuple(source.predict(generator.first_batch()).shape), size, len(names))
        ort_results = evaluate(source, OrtModel(ort_path), generator.generate_samples(), files, spec.as_dict(),
                               layout, layout, labelled_split(files))
        rows.append(("ONNX Runtime quantize_static (QDQ, per-channel, min/max)", ort_results, OrtModel(ort_path)))
        sample = generator.first_batch()
        litert = median_latency([LiteRTModel(float_model)] + [r[2] for r in rows[:2]], sample)
        ort = median_latency([OrtModel(args.model), rows[2][2]], sample)
        float_size = float_model.stat().st_size
    reference = rows[0][1]
    print(f"{args.model.name}: {reference['num_images']} held-out images, float mAP50 (labels) "
          f"{reference['map50_reference']:.4f}, mAP50-95 {reference['map50_95_reference']:.4f}, "
          f"{reference['detections_per_image']['reference']:.2f} float detections per image (score >= 0.25)")
    print("| variant | float detections kept | int8 detections / image | mAP50 vs float | mAP50 (labels) "
          "| mAP50-95 (labels) | size KiB | latency ms (vs float, same runtime) |")
    print("|---|---|---|---|---|---|---|---|")
    latencies = [(litert[1], litert[0]), (litert[2], litert[0]), (ort[1], ort[0])]
    for (name, r, model), (ms, base) in zip(rows, latencies):
        kept = "n/a" if r["detections_kept"] is None else f"{100 * r['detections_kept']:.1f}%"
        print(f"| {name} | {kept} | {r['detections_per_image']['quantized']:.2f} | {r['map50_vs_reference']:.4f} "
              f"| {r['map50']:.4f} | {r['map50_95']:.4f} | {model.size_bytes / 1024:.1f} "
              f"({100 * model.size_bytes / float_size:.0f}% of fp32 .tflite) | {ms:.2f} ({base / ms:.2f}x) |")


if __name__ == "__main__":
    from int8lab.cli import library_chatter_aside

    with library_chatter_aside():
        main()
