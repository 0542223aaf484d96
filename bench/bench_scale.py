"""Memory at any dataset size: `int8lab validate` and `int8lab experiment` on 2,000 and 20,000 images.

    .venv/bin/python bench/bench_scale.py [--sizes 2000,20000]

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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "fashion" / "mobilenetv3.keras"
TEST = ROOT / "examples" / "fashion" / "data" / "test"

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
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
