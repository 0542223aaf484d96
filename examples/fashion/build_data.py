"""Rebuild examples/fashion/data from the original Fashion-MNIST idx files.

    python examples/fashion/build_data.py [--source DIR] [--val-per-class 30] [--test-per-class 50]

Writes ``data/val/<class>/`` and ``data/test/<class>/`` as 28x28 grayscale PNGs, drawn in order
from the official *test* set (t10k), so the example model, trained on the 60,000 training images,
never saw them. Source: ``../shared/data/fashion-mnist`` beside the checkout, or Debian's
``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist).
Fashion-MNIST is (c) Zalando SE, MIT licence: see examples/fashion/LICENSE-DATA.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
CLASS_NAMES = ("tshirt_top", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle_boot")  # original label order
SOURCES = (HERE.parents[2] / "shared" / "data" / "fashion-mnist",
           Path("/usr/share/datasets/fashion-mnist"))


def find_source(explicit: Path | None) -> Path:
    for candidate in ([explicit] if explicit else SOURCES):
        if candidate and (candidate / "t10k-images-idx3-ubyte.gz").is_file():
            return candidate
    raise SystemExit("Fashion-MNIST idx files not found; pass --source or "
                     "`apt-get install dataset-fashion-mnist`")


def read_idx(path: Path) -> np.ndarray:
    """The idx format: big-endian magic (dtype code, ndim), the dims, then the raw data."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(source: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
    return images, labels


def load_training_split(source: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels, the labels renumbered to the sorted class-folder order int8lab (and
    Keras' image_dataset_from_directory) use, so a model trained on them reads data/ directly."""
    images, labels = load_split(source, prefix)
    sorted_index = {name: i for i, name in enumerate(sorted(CLASS_NAMES))}
    remap = np.array([sorted_index[name] for name in CLASS_NAMES])  # original -> sorted-folder index
    return images, remap[labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "data")
    parser.add_argument("--val-per-class", type=int, default=30)
    parser.add_argument("--test-per-class", type=int, default=50)
    args = parser.parse_args()
    images, labels = load_split(find_source(args.source), "t10k")
    if args.out.exists():
        shutil.rmtree(args.out)
    for label, name in enumerate(CLASS_NAMES):
        rows = np.flatnonzero(labels == label)
        splits = {"val": rows[:args.val_per_class],
                  "test": rows[args.val_per_class:args.val_per_class + args.test_per_class]}
        for split, chosen in splits.items():
            folder = args.out / split / name
            folder.mkdir(parents=True)
            for row in chosen:
                Image.fromarray(images[row], "L").save(folder / f"t10k_{row:05d}.png", optimize=True)
    print(f"wrote {args.out}: {args.val_per_class} val + {args.test_per_class} test images "
          f"for each of {len(CLASS_NAMES)} classes")


if __name__ == "__main__":
    main()
