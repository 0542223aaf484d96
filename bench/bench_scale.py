"""Memory at any dataset size: `int8lab validate` and `int8lab experiment` on 2,000 and 20,000 images;
and `int8lab validate` on Ray with thousands of real photos.

    .venv/bin/python bench/bench_scale.py [--sizes 2000,20000]
    .venv/bin/python bench/bench_scale.py --ray [--sizes 5000,50000]     # needs ../shared
    .venv/bin/python bench/bench_scale.py --ray --model yolov8n --sizes 1000,3000

The model: examples/fashion/mobilenetv3.keras (48x48x3, [-1, 1]) and its int8 .tflite, built
here. The images: hard links of the 500 held-out test images of examples/fashion/data, repeated
into class folders, beside the example's 300 validation images. Each run is an int8lab command in
its own process; its peak RSS comes from the kernel (getrusage of the child).

- `validate`, against a baseline run in the same way at the same sizes: the held-in-RAM
  evaluation int8lab had before streaming (every preprocessed tensor stacked, then every output).
- `experiment`, a small sweep (fp32, fp16, dynamic, int16x8, int8 on 10 images, int8 on one
  class) calibrated on the validation images and scored on the test images; its cache of tensors
  and float outputs is written to disk and read back batch by batch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "fashion" / "mobilenetv3.keras"
TEST = ROOT / "examples" / "fashion" / "data" / "test"
SHARED = ROOT.parent / "shared" / "data"

HELD_IN_RAM = """
import sys
from pathlib import Path
import numpy as np
from int8lab.config import DataOptions
from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.model.source import load_model_source
from int8lab.runtime import LiteRTModel
source = load_model_source(sys.argv[1])
spec = DataOptions(preset="tf").spec(source.input)
generator = RepresentativeDataGenerator(sys.argv[3], num_samples=None, split="test", spec=spec, progress=False)
tensors = np.stack([tensor for _, tensor in generator.generate_samples()])
for model in (source, LiteRTModel(Path(sys.argv[2]))):
    np.concatenate([model.predict(tensors[i:i + 64]) for i in range(0, len(tensors), 64)])
"""


def make_folder(root: Path, count: int) -> Path:
    """DIR/test/<class>/ with ``count`` hard links of the example's test images, and DIR/val/
    with the example's validation images (the experiment calibrates on them)."""
    per_class = [sorted(folder.glob("*.png")) for folder in sorted(TEST.iterdir())]
    sources = [path for row in zip(*per_class) for path in row]  # every class in any prefix
    for k in range(count):
        source = sources[k % len(sources)]
        target = root / "test" / source.parent.name / f"{k:06d}_{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    for source in sorted((TEST.parent / "val").rglob("*.png")):
        target = root / "val" / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    return root


def peak_rss(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``command`` run in a fresh wrapper process."""
    wrapper = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
               "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - start)")
    out = subprocess.run([sys.executable, "-c", wrapper, *command], check=True, capture_output=True, text=True)
    kilobytes, seconds = out.stdout.split()
    return int(kilobytes) / 1024, float(seconds)


RAY_DOC = """`--ray`: a model quantized by `int8lab convert` on 200 ImageNet-sample photos, then validated
against its float source on N images: hard links of the 663 real photos of ../shared (ImageNet
sample, coco128, OpenCV's), repeated. `--model mobilenet_v2` (default): torchvision's MobileNetV2
(the zoo's weights, 224 x 224) against its `.pth`; `--model yolov8n`: Ultralytics' COCO YOLOv8n
(640 x 640, letterboxed) against its ONNX, scored against the float model's detections. Each size
runs in one process (no Ray; the smallest size only), and with `--ray-address local` on 1 and on 2
shards (one CPU each). A Ray worker's peak RSS is read from /proc while it runs. The two models'
own latency at one thread (LiteRT and the reference, batch of one, median of 20) is measured in
the same run: a worker's time per image is compared with it."""

LATENCY = """
import os
os.environ["OMP_NUM_THREADS"] = "1"  # ONNX Runtime's session takes it, as in a Ray worker
import sys, time, numpy as np, torch
torch.set_num_threads(1)
from pathlib import Path
from int8lab.model.source import ModelOptions, load_model_source
from int8lab.runtime import LiteRTModel
weights, arch, quantized, size = sys.argv[1], sys.argv[2] or None, sys.argv[3], int(sys.argv[4])
reference = load_model_source(Path(weights), ModelOptions(arch=arch, input_size=(size, size)))
model = LiteRTModel(Path(quantized), 1)
x = np.random.default_rng(0).random((1, 3, size, size), np.float32)
def median(m):
    m.predict(x)
    times = []
    for _ in range(20):
        start = time.perf_counter(); m.predict(x); times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))
print(median(reference), median(model))
"""


def scale_models() -> dict:
    """name -> (title, reference path, --arch or '', convert flags, input size, the figure to compare)."""
    sys.path.insert(0, str(ROOT))
    from bench.zoo import ZOO

    zoo = ZOO["mobilenet_v2"]
    return {
        "mobilenet_v2": ("torchvision's MobileNetV2 int8 against its float .pth", zoo.weights(), zoo.arch,
                         ["--input-size", "224", "224", "--preset", "imagenet"], 224, "top1_agreement"),
        "yolov8n": ("Ultralytics' COCO YOLOv8n int8 against its float ONNX", SHARED / "models" / "yolov8n-coco.onnx",
                    "", ["--input-size", "640", "640", "--preset", "unit", "--resize", "letterbox"], 640,
                    "map50_95_vs_reference"),
    }


def real_photos() -> list[Path]:
    photos = sorted((SHARED / "imagenet-sample").glob("*/*")) + sorted((SHARED / "coco128" / "images" / "test").iterdir())
    return photos + [p for p in sorted((SHARED / "photos").iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]


def photo_folder(root: Path, photos: list[Path], count: int) -> Path:
    """DIR/test/ with ``count`` hard links of the photos, repeated (each link is an image of its own)."""
    (root / "test").mkdir(parents=True)
    for k in range(count):
        os.link(photos[k % len(photos)], root / "test" / f"{k:06d}_{photos[k % len(photos)].name}")
    return root


class WorkerMemory:
    """Peak RSS (VmHWM) of every Ray validation worker, polled from /proc while a job runs."""

    def __init__(self):
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if not (title.startswith(b"ray::validate_shard") or int(pid) in self.peaks):
                        continue
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                kilobytes = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
                self.peaks[int(pid)] = max(self.peaks.get(int(pid), 0), kilobytes / 1024)


def ray_scaling(sizes: list[int], model: str) -> None:
    if not SHARED.is_dir():
        sys.exit(f"--ray needs the real photos of {SHARED}")
    title, reference, arch, flags, size_px, figure = scale_models()[model]
    arch_flags = ["--arch", arch] if arch else []
    int8lab = [sys.executable, "-m", "int8lab"]
    photos = real_photos()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        calibration = tmp / "calibration"
        calibration.mkdir()
        for photo in photos[:200]:
            os.link(photo, calibration / photo.name)
        quantized = tmp / "model_int8.tflite"
        subprocess.run([*int8lab, "convert", reference, *arch_flags, *flags, "--data", calibration, "-o", quantized,
                        "-q"], check=True, stdout=subprocess.DEVNULL)
        latency = subprocess.run([sys.executable, "-c", LATENCY, str(reference), arch, str(quantized), str(size_px)],
                                 check=True, capture_output=True, text=True).stdout.split()
        reference_ms, int8_ms = (float(v) for v in latency[-2:])
        rows = []
        for size in sizes:
            data = photo_folder(tmp / f"data_{size}", photos, size)
            runs = [("one process", [])] if size == min(sizes) else []
            runs += [(f"Ray, {n} shard{'s' * (n > 1)}", ["--ray-address", "local", "--shards", str(n)]) for n in (1, 2)]
            for name, extra in runs:
                out = tmp / f"v_{size}_{len(rows)}"
                with WorkerMemory() as memory:
                    start = time.perf_counter()
                    subprocess.run([*int8lab, "validate", quantized, "--reference", reference, *arch_flags,
                                    "--data", data, "-o", out, "-q", "--json", *extra], check=True,
                                   stdout=subprocess.DEVNULL)
                    seconds = time.perf_counter() - start
                figures = json.loads((out / "validation.json").read_text())
                rows.append((size, name, seconds, figures, max(memory.peaks.values(), default=None)))
                print(rows[-1][:3], figures[figure], rows[-1][4], flush=True)
            shutil.rmtree(data)
    both = reference_ms + int8_ms
    print(f"\n`int8lab validate` of {title}; the two models at one thread: reference {reference_ms:.1f} ms + "
          f"LiteRT int8 {int8_ms:.1f} ms = {both:.1f} ms an image")
    print(f"| images | run | minutes | images/s | vs 1 shard | a worker's ms an image (vs the two models) | "
          f"{figure} | worker peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for size, name, seconds, figures, peak in rows:
        one = next(r for r in rows if r[0] == size and r[1] == "Ray, 1 shard")
        workers = 2 if "2 shards" in name else 1
        per_image = 1000 * seconds * workers / size
        print(f"| {size:,} | {name} | {seconds / 60:.1f} | {size / seconds:.1f} | {one[2] / seconds:.2f}x | "
              f"{per_image:.1f} ({per_image / both:.2f}x) | {figures[figure]:.6f} | "
              f"{'-' if peak is None else f'{peak:.0f}'} |")
    if len(sizes) > 1:  # start-up (Ray, imports, the models) cancels out of the difference
        small, large = min(sizes), max(sizes)
        for name, workers in (("Ray, 1 shard", 1), ("Ray, 2 shards", 2)):
            times = {r[0]: r[2] for r in rows if r[1] == name}
            marginal = 1000 * workers * (times[large] - times[small]) / (large - small)
            print(f"\n{name}: a worker's time per image from {small:,} to {large:,} images {marginal:.1f} ms "
                  f"({marginal / both:.2f}x the two models' {both:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=RAY_DOC)
    parser.add_argument("--sizes", default=None, help="default 2000,20000 (--ray: 5000,50000)")
    parser.add_argument("--ray", action="store_true", help="validate on Ray with real photos (see below)")
    parser.add_argument("--model", default="mobilenet_v2", choices=("mobilenet_v2", "yolov8n"), help="with --ray")
    args = parser.parse_args()
    if args.ray:
        ray_scaling([int(s) for s in (args.sizes or "5000,50000").split(",")], args.model)
        return
    sizes = [int(s) for s in (args.sizes or "2000,20000").split(",")]
    int8lab = [sys.executable, "-m", "int8lab"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        quantized = tmp / "model_int8.tflite"
        subprocess.run([*int8lab, "convert", MODEL, "--data", ROOT / "examples" / "fashion" / "data", "--preset",
                        "tf", "-o", quantized, "-q"], check=True, stdout=subprocess.DEVNULL)
        rows, experiments = [], []
        for size in sizes:
            data = make_folder(tmp / f"data_{size}", size)
            start = time.perf_counter()
            streaming = peak_rss([*int8lab, "validate", quantized, "--reference", MODEL, "--data", data,
                                  "--preset", "tf", "-o", tmp / f"report_{size}", "-q", "--json"])
            figures = json.loads((tmp / f"report_{size}" / "validation.json").read_text())
            assert figures["num_images"] == size, figures["num_images"]
            held = peak_rss([sys.executable, "-c", HELD_IN_RAM, str(MODEL), str(quantized), str(data)])
            rows.append((size, streaming, held, figures["top1_agreement"], time.perf_counter() - start))
            lab = tmp / f"lab_{size}"
            sweep = peak_rss([*int8lab, "experiment", MODEL, "--data", data, "--preset", "tf", "-o", lab,
                              "--calib-sizes", "10", "--repeats", "1", "--strategies", "random", "-q"])
            experiments.append((size, sweep, len(list((lab / "variants").iterdir()))))
    print(f"`int8lab validate` of {MODEL.name} (48x48x3) and its int8 .tflite; peak RSS of each run")
    print("| images | streaming: peak RSS MB | images/s | held in RAM (before): peak RSS MB | images/s | "
          "top-1 agreement |")
    print("|---|---|---|---|---|---|")
    for size, (rss, seconds), (held_rss, held_seconds), agreement, _ in rows:
        print(f"| {size:,} | {rss:.0f} | {size / seconds:.0f} | {held_rss:.0f} | {size / held_seconds:.0f} | "
              f"{100 * agreement:.2f}% |")
    if len(rows) > 1:
        (first, (rss0, _), (held0, _), _, _), (last, (rss1, _), (held1, _), _, _) = rows[0], rows[-1]
        print(f"\nfrom {first:,} to {last:,} images peak RSS grows by {rss1 - rss0:.0f} MB streaming "
              f"(held in RAM: {held1 - held0:.0f} MB)")
    print(f"\n`int8lab experiment` of {MODEL.name}, calibrated on 300 images, every variant scored on the test images")
    print("| images | variants | peak RSS MB | minutes |")
    print("|---|---|---|---|")
    for size, (rss, seconds), variants in experiments:
        print(f"| {size:,} | {variants} | {rss:.0f} | {seconds / 60:.1f} |")
    if len(experiments) > 1:
        print(f"\nfrom {experiments[0][0]:,} to {experiments[-1][0]:,} images the experiment's peak RSS grows by "
              f"{experiments[-1][1][0] - experiments[0][1][0]:.0f} MB")


if __name__ == "__main__":
    main()
