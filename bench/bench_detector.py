"""Detector int8 in one process: int8lab's default against itself with every kernel integer,
plain min/max int8 with no output handling, and ONNX Runtime's static int8 (MinMax, Percentile,
Entropy), on the same model and images.

    .venv/bin/python bench/bench_detector.py                      # the example detector
    .venv/bin/python bench/bench_detector.py --coco               # the real COCO YOLOv8n of ../shared
    .venv/bin/python bench/bench_detector.py --shared yolov3-tiny-coco-416 --fidelity --ort-methods MinMax
                                                                  # a float-trained one, also on 463 photos

The example: the project's detector as Ultralytics exports (ONNX, dynamic axes, one output
[1, 4 + classes, anchors]), calibrated on examples/detect/data/images/val, scored on images/test.
``--coco``: ``../shared/data/models/yolov8n-coco.onnx`` (640 x 640) scored on the 126 labelled
coco128 images, calibrated on 200 other real photos (a seeded draw from
``../shared/data/imagenet-sample``), the layout a user would give ``--data``. ``--shared NAME``:
any model of ``../shared/data/models`` the same way (its input size from the name's last number,
else 640): the COCO YOLOv8n sits on an int8 weight grid, YOLO-World v8s and YOLOv3-tiny were
trained in float. ``--fidelity`` also scores every variant against the float model's own
detections on 463 unlabelled real photos (the 300 ImageNet photos not drawn for calibration,
OpenCV's 37 and coco128's 126): no labels needed, so sub-point differences show.

Every int8 variant is calibrated on the same images (int8lab's seeded draw) and scored with the
same streaming evaluation: mAP against the YOLO labels, the share of the float model's detections
(score >= 0.25) it keeps. Latency: LiteRT (or ONNX Runtime for its own models), warm-up,
interleaved rounds, median; ratios against the float model in the same runtime.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from anchors import OrtModel, decode_tail, ort_static_int8, with_node_names

from int8lab.config import DataOptions
from int8lab.errors import Int8labError
from int8lab.model.source import ModelOptions, load_model_source
from int8lab.pipeline import convert_job, validate_job
from int8lab.runtime import LiteRTModel
from int8lab.data.annotations import dataset_names, ground_truth
from int8lab.tasks.detect import evaluate, resolve_layout

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "detect"
SHARED = ROOT.parent / "shared" / "data"


def coco_layout(folder: Path, calibration_photos: int = 200, seed: int = 0) -> Path:
    """images/val: a seeded draw of ImageNet photos; images/test + labels/test: coco128."""
    for part in ("images/val", "images/test", "labels/test"):
        (folder / part).mkdir(parents=True)
    photos = sorted((SHARED / "imagenet-sample").glob("*/*"))
    random.Random(seed).shuffle(photos)
    for photo in photos[:calibration_photos]:
        (folder / "images" / "val" / photo.name).symlink_to(photo)
    for part in ("images", "labels"):
        for file in sorted((SHARED / "coco128" / part / "test").iterdir()):
            (folder / part / "test" / file.name).symlink_to(file)
    names = yaml.safe_load((SHARED / "coco128" / "data.yaml").read_text())["names"]
    (folder / "data.yaml").write_text(yaml.safe_dump({"path": ".", "val": "images/val", "test": "images/test",
                                                      "names": names}))
    return folder


def photo_layout(folder: Path, coco: Path) -> Path:
    """images/test: every real photo of ../shared not drawn for calibration in ``coco`` (the
    other ImageNet photos, OpenCV's, coco128's), unlabelled."""
    (folder / "images" / "test").mkdir(parents=True)
    drawn = {p.name for p in (coco / "images" / "val").iterdir()}
    photos = [p for p in sorted((SHARED / "imagenet-sample").glob("*/*")) if p.name not in drawn]
    photos += [p for p in sorted((SHARED / "photos").iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    photos += sorted((SHARED / "coco128" / "images" / "test").iterdir())
    for k, photo in enumerate(photos):
        (folder / "images" / "test" / f"{k:04d}_{photo.name}").symlink_to(photo)
    (folder / "data.yaml").write_text((coco / "data.yaml").read_text())
    return folder


def median_latency(models, sample: np.ndarray, rounds: int = 5, runs: int = 10) -> list[float]:
    """Median ms per image, interleaving the models round by round after a warm-up."""
    times = [[] for _ in models]
    for model in models:
        for _ in range(3):
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
    parser.add_argument("--coco", action="store_true", help="the real COCO YOLOv8n of ../shared (640 x 640)")
    parser.add_argument("--shared", help="a model of ../shared/data/models by name (yolov3-tiny-coco-416, ...)")
    parser.add_argument("--fidelity", action="store_true",
                        help="also score against the float model on 463 unlabelled photos (with --coco/--shared)")
    parser.add_argument("--num-samples", type=int, default=100, help="calibration images (int8lab's default)")
    parser.add_argument("--ort-methods", default="MinMax,Percentile,Entropy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ort-histogram-images", type=int, default=32,
                        help="calibration images for ONNX Runtime's Percentile and Entropy, which keep every "
                             "intermediate output in RAM (MinMax takes them all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        args.photos = None
        if args.coco or args.shared:
            name = args.shared or "yolov8n-coco"
            size = int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else 640
            args.model, args.input_size = SHARED / "models" / f"{name}.onnx", (size, size)
            args.data = coco_layout(out / "data")
            if args.fidelity:
                args.photos = photo_layout(out / "photos", args.data)
        run(args, out)


def run(args, out: Path) -> None:
    size = tuple(args.input_size)
    opts = DataOptions(preset="unit", resize="letterbox", input_size=size, num_samples=args.num_samples, quiet=True)
    source = load_model_source(args.model, ModelOptions(input_size=size))
    spec = opts.spec(source.input)
    float_model = out / "fp32.tflite"
    convert_job(source, args.data, float_model, opts, "none")
    names = dataset_names(args.data)
    held_out = evaluation(opts, spec, args.data)
    photos = evaluation(opts, spec, args.photos) if args.photos else None
    layout = resolve_layout(tuple(source.predict(held_out[0].first_batch()).shape), size, len(names))
    rows = []
    integer = replace(opts, target="integer")
    variants = (("int8lab default (--target cpu: float I/O, every op in XNNPACK)", opts),
                ("int8lab --target integer (int8 I/O)", integer),
                ("int8lab, every kernel integer (--target integer --head-precision int8)",
                 replace(integer, head_precision="int8")),
                ("plain min/max int8 (--target integer --keep-box-units --head-precision int8)",
                 replace(integer, normalise_boxes=False, head_precision="int8")))
    refused = []  # (variant, why): a plan a model cannot have (no integer kernel for an op, say)
    for name, variant in variants:
        path = out / f"{len(rows)}.tflite"
        try:
            converted = convert_job(source, args.data, path, variant)  # each target's own plan
        except Int8labError as exc:
            refused.append((name, str(exc)))
            continue
        results = validate_job(path, source, args.data, spec, "test", out / f"{len(rows)}")
        on_photos = validate_job(path, source, args.photos, spec, "test", out / f"{len(rows)}p") if photos else None
        rows.append((name, results, LiteRTModel(path, args.threads), converted.info.float_op_summary() or "none",
                     on_photos))
    named = with_node_names(args.model, out / "named.onnx")
    tail = decode_tail(named)
    ort_variants = [(m, None) for m in args.ort_methods.split(",") if m] + [("MinMax", tail)]
    for method, exclude in ort_variants:
        calibration = opts.generator(args.data, spec, split="val").generate_batches()
        cap = None if method == "MinMax" else args.ort_histogram_images
        ort_path = ort_static_int8(named, calibration, out / f"ort_{method}_{len(rows)}.onnx", method, cap,
                                   exclude)
        ort = OrtModel(ort_path)
        results, on_photos = (evaluate(source, ort, generator.generate_samples(), files, spec.as_dict(), layout,
                                       layout, ground_truth(files, names)) if generator else None
                              for generator, files in (held_out, photos or (None, None)))
        images = f", {min(cap, args.num_samples)} images" if cap else ""
        floats = f", the decode tail and output convolutions float ({len(exclude)} nodes)" if exclude else ""
        rows.append((f"ONNX Runtime quantize_static ({method}{images}, QDQ, per-channel{floats})", results,
                     ort, f"{len(exclude)} nodes" if exclude else "QDQ", on_photos))
    sample = held_out[0].first_batch()
    made = len(variants) - len(refused)
    litert = median_latency([LiteRTModel(float_model, args.threads)] + [r[2] for r in rows[:made]], sample)
    ort = median_latency([OrtModel(args.model)] + [r[2] for r in rows[made:]], sample)
    float_size = float_model.stat().st_size
    reference = rows[0][1]
    print(f"{args.model.name}: {reference['num_images']} held-out images, float mAP50-95 (labels) "
          f"{reference['map50_95_reference']:.4f}, mAP50 {reference['map50_reference']:.4f}, "
          f"{reference['detections_per_image']['reference']:.2f} float detections per image (score >= 0.25); "
          f"calibration: {args.num_samples} images; float latency: LiteRT {litert[0]:.1f} ms, ONNX Runtime "
          f"{ort[0]:.1f} ms ({args.threads} LiteRT threads)"
          + (f"; photos: {rows[0][4]['num_images']} unlabelled" if photos else ""))
    print("| variant | mAP50-95 (labels) | mAP50 (labels) | float detections kept | mAP50-95 vs float | "
          + ("photos: mAP50-95 vs float | photos: float detections kept | " if photos else "")
          + "float ops | size KiB | latency ms (vs float, same runtime) |")
    print("|---" * (10 if photos else 8) + "|")
    latencies = [(ms, litert[0]) for ms in litert[1:]] + [(ms, ort[0]) for ms in ort[1:]]
    for (name, r, model, integer, p), (ms, base) in zip(rows, latencies):
        kept = "n/a" if r["detections_kept"] is None else f"{100 * r['detections_kept']:.1f}%"
        wide = f"{p['map50_95_vs_reference']:.4f} | {100 * p['detections_kept']:.1f}% | " if p else ""
        print(f"| {name} | {r['map50_95']:.4f} ({100 * (r['map50_95'] - r['map50_95_reference']):+.2f}) "
              f"| {r['map50']:.4f} | {kept} | {r['map50_95_vs_reference']:.4f} | {wide}{integer} "
              f"| {model.size_bytes / 1024:.0f} ({100 * model.size_bytes / float_size:.0f}% of fp32 .tflite) "
              f"| {ms:.2f} ({base / ms:.2f}x) |")
    for name, why in refused:
        print(f"\n{name}: refused, as int8lab refuses it: {why}")


def evaluation(opts, spec, data: Path):
    """The test split of ``data`` to score on: its generator and file list."""
    generator = opts.generator(data, spec, split="test", num_samples=None)
    return generator, [str(f) for f in generator.index.files]


if __name__ == "__main__":
    from int8lab.cli import library_chatter_aside

    with library_chatter_aside():
        main()
