"""The example detector's YOLO test labels written as a COCO JSON set and as a Pascal VOC set,
for the tests that read them back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import ROOT

from int8lab.data.annotations import dataset_names, read_yolo_labels, yolo_label_file
from int8lab.imageops import upright_size

DATA = ROOT / "examples" / "detect" / "data"
NAMES = dataset_names(DATA)
CATEGORY_IDS = [3 * k + 2 for k in range(len(NAMES))]  # not contiguous, not from 0


def yolo_labels(split: str):
    for image in sorted((DATA / "images" / split.removesuffix("2017")).iterdir()):
        size = upright_size(image)
        yield image, size, read_yolo_labels(yolo_label_file(image), size)


def write_coco(root: Path, split: str = "test", crowd_first: bool = False) -> Path:
    """The YOLO split as annotations/instances_<split>.json + images/<split>/ (categories listed
    out of order; with ``crowd_first`` the first image also holds a crowd region)."""
    (root / "annotations").mkdir(parents=True)
    (root / "images" / split).mkdir(parents=True)
    images, anns = [], []
    for n, (image, (width, height), (boxes, classes)) in enumerate(yolo_labels(split)):
        (root / "images" / split / image.name).symlink_to(image)
        images.append({"id": 500 + 7 * n, "file_name": image.name, "width": width, "height": height})
        rows = [(box, cls, 0) for box, cls in zip(boxes, classes)]
        if crowd_first and n == 0:
            rows.append((np.array([0.0, 0.0, width / 2, height / 2]), 0, 1))
        for box, cls, crowd in rows:
            anns.append({"id": len(anns) + 1, "image_id": 500 + 7 * n, "category_id": CATEGORY_IDS[cls],
                         "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                         "iscrowd": crowd, "area": float((box[2] - box[0]) * (box[3] - box[1]))})
    categories = [{"id": i, "name": name} for i, name in zip(CATEGORY_IDS, NAMES)][::-1]
    (root / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": images[::-1], "annotations": anns, "categories": categories}))
    return root


def write_voc(root: Path, split: str = "test", difficult_first: bool = False) -> Path:
    """The YOLO split as Annotations/*.xml + JPEGImages/ + ImageSets/Main/<split>.txt, boxes in
    VOC's 1-based pixels."""
    for part in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / part).mkdir(parents=True)
    ids = []
    for n, (image, (width, height), (boxes, classes)) in enumerate(yolo_labels(split)):
        (root / "JPEGImages" / image.name).symlink_to(image)
        ids.append(image.stem)
        objects = "".join(
            f"<object><name>{NAMES[c]}</name><difficult>{int(difficult_first and n == 0 and k == 0)}</difficult>"
            f"<bndbox><xmin>{b[0] + 1!r}</xmin><ymin>{b[1] + 1!r}</ymin><xmax>{b[2] + 1!r}</xmax>"
            f"<ymax>{b[3] + 1!r}</ymax></bndbox></object>"
            for k, (b, c) in enumerate(zip(boxes.tolist(), classes)))
        (root / "Annotations" / f"{image.stem}.xml").write_text(
            f"<annotation><filename>{image.name}</filename><size><width>{width}</width><height>{height}</height>"
            f"</size>{objects}</annotation>")
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root
