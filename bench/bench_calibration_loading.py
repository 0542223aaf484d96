"""Calibration-loading throughput: int8lab vs a naive PIL loop vs tf.data, in one process.

    .venv/bin/python bench/bench_calibration_loading.py [--photos DIR] [--min-images 1000]

The real photos (JPEG and PNG, 256x256 to 868x600) are copied to at least ``--min-images``
files (copies, not symbolic links: int8lab lists a file reached through two links once) and preprocessed to 224x224x3 float32 with ImageNet mean/std. The naive
loop is also the *reference* preprocessing (full decode, EXIF, RGB, Pillow bilinear resize); the
table reports each method's largest and mean absolute difference to it, in normalised units and
in 0-255 pixel levels. Each method runs ``--rounds`` times, interleaved with the others; the median
round counts, so one lucky or unlucky round moves nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from int8lab import RepresentativeDataGenerator
from int8lab.data.discovery import iter_images
from int8lab.preprocess import PRESETS

SIZE = (224, 224)
MEAN = np.asarray(PRESETS["imagenet"][0], np.float32)
STD = np.asarray(PRESETS["imagenet"][1], np.float32)
TF_BATCH = 32  # tf.data's per-element overhead needs batching; int8lab keeps its default, 1


def naive_reference(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        img = img.resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR)
    return (np.asarray(img, np.float32) / 255.0 - MEAN) / STD


def run_naive(files):
    for f in files:
        naive_reference(f)


def int8lab_generator(folder: Path, jpeg_draft: bool):
    return RepresentativeDataGenerator(
        folder, "folder", num_samples=None, batch_size=1, input_size=SIZE, seed=0,
        progress=False, preset="imagenet", jpeg_draft=jpeg_draft,
    )


def run_int8lab(folder: Path, jpeg_draft: bool):
    for _ in int8lab_generator(folder, jpeg_draft).generate_batches():
        pass


def int8lab_tensors(folder: Path, jpeg_draft: bool):
    """Tensors in file order (sampling order is a permutation)."""
    generator = int8lab_generator(folder, jpeg_draft)
    out = [None] * len(generator.index)
    for i, tensor in generator.generate_samples():
        out[i] = tensor
    return out


def tf_dataset(files):
    import tensorflow as tf

    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, SIZE, method="bilinear", antialias=True)
        return (image / 255.0 - MEAN) / STD

    dataset = (tf.data.Dataset.from_tensor_slices([str(f) for f in files])
               .map(load, num_parallel_calls=tf.data.AUTOTUNE)
               .batch(TF_BATCH).prefetch(tf.data.AUTOTUNE))
    return dataset


def run_tf_data(files):
    for _ in tf_dataset(files).as_numpy_iterator():
        pass


def tf_data_tensors(files):
    return [t for batch in tf_dataset(files).as_numpy_iterator() for t in batch]


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_photos = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
    parser.add_argument("--photos", type=Path, default=default_photos)
    parser.add_argument("--min-images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed runs per method; the median counts")
    args = parser.parse_args()
    photos = list(iter_images(args.photos))
    if not photos:
        raise SystemExit(f"no photos in {args.photos}")
    repeats = -(-args.min_images // len(photos))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(repeats):
            for p in photos:
                shutil.copyfile(p, folder / f"{r:03d}_{p.name}")
        files = sorted(folder.iterdir())
        print(f"{len(files)} images ({len(photos)} real photos x {repeats}), {SIZE[0]}x{SIZE[1]}x3 "
              f"float32, ImageNet mean/std, {os.cpu_count()} cores")
        run_naive(files[:20])  # warm the page cache and imports for everyone
        run_tf_data(files[:20])
        runs = {
            "naive PIL loop (1 thread)": (run_naive, files),
            "tf.data (AUTOTUNE)": (run_tf_data, files),
            "int8lab, no JPEG draft": (run_int8lab, folder, False),
            "int8lab (default)": (run_int8lab, folder, True),
        }
        # Rounds interleave the methods, so a busy neighbour or a warming cache hurts all alike.
        rounds = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                rounds[name].append(timed(*run))
        seconds = {name: statistics.median(times) for name, times in rounds.items()}
        unique = folder / "unique"
        unique.mkdir()
        for p in photos:
            shutil.copyfile(p, unique / p.name)
        unique_files = sorted(unique.iterdir())
        reference = np.stack([naive_reference(f) for f in unique_files])
        tensors = {
            "naive PIL loop (1 thread)": reference,
            "tf.data (AUTOTUNE)": np.stack(tf_data_tensors(unique_files)),
            "int8lab, no JPEG draft": np.stack(int8lab_tensors(unique, False)),
            "int8lab (default)": np.stack(int8lab_tensors(unique, True)),
        }
    naive_s, tf_s = seconds["naive PIL loop (1 thread)"], seconds["tf.data (AUTOTUNE)"]
    print(f"{'method':28s} {'images/s':>9s} {'vs naive':>9s} {'vs tf.data':>10s} "
          f"{'max|diff|':>10s} {'mean|diff|':>10s} {'max px':>7s} {'worst image mean px':>20s}")
    for name, elapsed in seconds.items():
        diff = np.abs(tensors[name] - reference) * STD * 255  # in 0-255 pixel levels
        print(f"{name:28s} {len(files) / elapsed:9.1f} {naive_s / elapsed:8.2f}x "
              f"{tf_s / elapsed:9.2f}x {(diff / STD / 255).max():10.4f} "
              f"{(diff / STD / 255).mean():10.5f} {diff.max():7.1f} "
              f"{diff.mean(axis=(1, 2, 3)).max():20.2f}")


if __name__ == "__main__":
    main()
