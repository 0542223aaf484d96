"""Build the example detection set: Fashion-MNIST objects pasted onto crops of real photos.

    python examples/detect/build_data.py [--source DIR] [--photos DIR] [--val 120] [--test 200]

Writes an Ultralytics-style YOLO layout under ``examples/detect/data``: ``images/{val,test}``
(JPEG, 160 to 240 px a side, several aspect ratios so letterboxing matters), ``labels/{val,test}``
(one ``class x_centre y_centre width height`` line per object, normalised to the image) and
``data.yaml`` with the class names. ``val`` is the calibration split, ``test`` the held-out one.
The objects come from Fashion-MNIST's official test set (the training script draws its objects
from the training set); the held-out split also uses photos that no other split uses.

``compose`` is what ``train_detector.py`` calls to draw its training images in memory.
Fashion-MNIST is (c) Zalando SE, MIT licence; the photos are OpenCV's sample data (BSD-3/Apache-2.0):
see LICENSE-DATA beside this file.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("fashion_data", HERE.parent / "fashion" / "build_data.py")
fashion_data = importlib.util.module_from_spec(_spec)  # the classifier example's Fashion-MNIST reader
_spec.loader.exec_module(fashion_data)
CLASS_NAMES, find_source, load_split = fashion_data.CLASS_NAMES, fashion_data.find_source, fashion_data.load_split

PHOTO_SOURCES = (HERE.parents[2] / "shared" / "data" / "photos",
                 Path("/usr/share/doc/opencv-doc/examples/data"))
SIZES = ((160, 160), (200, 160), (160, 200), (240, 180), (192, 160))  # (width, height)
HELD_OUT_PHOTO_EVERY = 4  # every 4th photo (sorted) is a background only the test split uses


def find_photos(explicit: Path | None) -> list[Path]:
    for candidate in ([explicit] if explicit else PHOTO_SOURCES):
        if candidate and candidate.is_dir():
            photos = sorted(p for p in candidate.iterdir() if p.suffix.lower() in (".jpg", ".png"))
            if photos:
                return photos
    raise SystemExit("photos not found; pass --photos DIR or `apt-get install opencv-doc`")


def split_photos(photos: list[Path]) -> tuple[list[Image.Image], list[Image.Image]]:
    """(backgrounds for training and calibration, backgrounds for the held-out split only)."""
    opened = [Image.open(p).convert("RGB") for p in photos]
    held_out = [img for k, img in enumerate(opened) if k % HELD_OUT_PHOTO_EVERY == 0]
    return [img for k, img in enumerate(opened) if k % HELD_OUT_PHOTO_EVERY], held_out


def _background(rng: np.random.Generator, photos: list[Image.Image], size: tuple[int, int]) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    width, height = size
    scale = rng.uniform(0.4, 1.0) * min(photo.width / width, photo.height / height)
    crop_w, crop_h = int(width * scale), int(height * scale)
    left, top = rng.integers(0, photo.width - crop_w + 1), rng.integers(0, photo.height - crop_h + 1)
    crop = photo.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.BILINEAR)
    return np.asarray(crop, dtype=np.float32)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def compose(rng: np.random.Generator, photos: list[Image.Image], objects: np.ndarray,
            classes: np.ndarray, size: tuple[int, int] | None = None) -> tuple[Image.Image, np.ndarray]:
    """One image and its boxes: rows of (class, x1, y1, x2, y2) in pixels.

    Each object is a Fashion-MNIST item scaled to 24-80 px, tinted, and alpha-blended by its own
    intensity; its box is the tight box of the visible item, as a human labeller would draw it."""
    width, height = size or SIZES[rng.integers(len(SIZES))]
    canvas = _background(rng, photos, (width, height))
    boxes: list[tuple] = []
    for _ in range(rng.integers(1, 5)):
        row = rng.integers(len(objects))
        side = int(rng.integers(24, 81))
        item = np.asarray(Image.fromarray(objects[row]).resize((side, side), Image.BILINEAR), np.float32) / 255
        visible = item > 0.1
        ys, xs = np.nonzero(visible)
        if len(xs) == 0:
            continue
        for _attempt in range(10):
            left, top = rng.integers(0, width - side + 1), rng.integers(0, height - side + 1)
            box = (left + xs.min(), top + ys.min(), left + xs.max() + 1, top + ys.max() + 1)
            if all(_iou(box, other[1:]) < 0.2 for other in boxes):
                break
        else:
            continue
        tint = rng.uniform(0.55, 1.0, size=3) * 255
        alpha = np.clip(item * 1.6, 0, 1)[..., None]
        patch = canvas[top:top + side, left:left + side]
        canvas[top:top + side, left:left + side] = patch * (1 - alpha) + (item[..., None] * tint) * alpha
        boxes.append((int(classes[row]), *map(float, box)))
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    return image, np.array(boxes, dtype=np.float32).reshape(-1, 5)


def yolo_lines(boxes: np.ndarray, size: tuple[int, int]) -> str:
    width, height = size
    return "".join(f"{int(c)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                   f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n" for c, x1, y1, x2, y2 in boxes)


def write_split(out: Path, split: str, count: int, rng, photos, objects, classes) -> None:
    images, labels = out / "images" / split, out / "labels" / split
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for k in range(count):
        image, boxes = compose(rng, photos, objects, classes)
        image.save(images / f"{split}_{k:04d}.jpg", quality=90)
        (labels / f"{split}_{k:04d}.txt").write_text(yolo_lines(boxes, image.size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="Fashion-MNIST idx files")
    parser.add_argument("--photos", type=Path, help="folder of background photos")
    parser.add_argument("--out", type=Path, default=HERE / "data")
    parser.add_argument("--val", type=int, default=120)
    parser.add_argument("--test", type=int, default=200)
    args = parser.parse_args()
    objects, classes = load_split(find_source(args.source), "t10k")
    half = len(objects) // 2
    shared, held_out = split_photos(find_photos(args.photos))
    if args.out.exists():
        shutil.rmtree(args.out)
    write_split(args.out, "val", args.val, np.random.default_rng(1), shared, objects[:half], classes[:half])
    write_split(args.out, "test", args.test, np.random.default_rng(2), held_out, objects[half:], classes[half:])
    names = "".join(f"  {k}: {name}\n" for k, name in enumerate(CLASS_NAMES))
    (args.out / "data.yaml").write_text(f"path: .\nval: images/val\ntest: images/test\nnames:\n{names}")
    print(f"wrote {args.out}: {args.val} calibration and {args.test} held-out images, "
          f"{len(CLASS_NAMES)} classes")


if __name__ == "__main__":
    main()
