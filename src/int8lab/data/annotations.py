"""The ground truth of labelled detection sets, in the three layouts people hold them in.

- **YOLO**: ``labels/<split>/<stem>.txt`` beside ``images/<split>/`` (class cx cy w h, fractions).
- **COCO JSON**: ``annotations/instances_<split>.json`` beside ``images/<split>/`` (or ``<split>/``,
  as COCO ships them). Category ids need not be contiguous: they map to the model's class order
  by name where the model or ``--labels`` gives names, else in sorted id order. ``iscrowd`` boxes
  are crowd regions.
- **Pascal VOC**: ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg``, the split's ids in
  ``ImageSets/Main/<split>.txt``; class names from the files (sorted, VOC's own order), boxes in
  VOC's 1-based pixels moved to 0-based as Ultralytics' conversion does; ``difficult`` objects.

Each becomes a GroundTruth: per image, boxes (xyxy, image pixels), class indices and each box's
kind (OBJECT, DIFFICULT, CROWD), found from the image's path, so
that any list of images (a split, a seeded part of one, a shard) finds its labels. COCO and VOC
tables are read once and hold a few numbers a box; YOLO files are read image by image.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from int8lab.errors import DatasetError

OBJECT, DIFFICULT, CROWD = 0, 1, 2  # what a ground-truth box is to the evaluation (int8lab.tasks.detection_metrics)
COCO_JSON = "instances_{split}.json"
Labels = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes [N, 4] xyxy pixels, classes [N], kinds [N]
_NONE: Labels = (np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, np.int64))


@dataclass(frozen=True)
class GroundTruth:
    """Labels by image: YOLO's read from the txt beside each image; COCO's and VOC's from a table
    keyed by the image's resolved path."""

    layout: str  # "yolo", "coco" or "voc"
    table: dict | None = None

    def of(self, image: str | Path, size: tuple[int, int]) -> Labels:
        if self.layout == "yolo":
            boxes, classes = read_yolo_labels(yolo_label_file(Path(image)), size)
            return boxes, classes, np.full(len(classes), OBJECT, np.int64)
        return self.table.get(str(Path(image).resolve()), _NONE)


def ground_truth(files: list[str], names: list[str] | None, dataset_type: str | None = None) -> GroundTruth | None:
    """The labels of ``files`` (a split's images), None when they have none. ``names``: the model's
    class names, which COCO categories and VOC names are mapped to. ``dataset_type``: what
    discovery found (a set may hold YOLO txt and COCO JSON alike, as Ultralytics' COCO does);
    None looks at the files' places, VOC's, then YOLO's, then COCO's."""
    if not files:
        return None
    if dataset_type not in ("voc", "detection", "coco"):
        dataset_type = None  # a folder of images may still sit in a YOLO layout
    first = Path(files[0])
    voc = _voc_root(first) if dataset_type in (None, "voc") else None
    if voc is not None:
        return GroundTruth("voc", _voc_table(voc, files, names))
    yolo = dataset_type in (None, "detection") and "images" in first.parts and yolo_label_file(first).parent.is_dir()
    if yolo:
        return GroundTruth("yolo")
    coco = coco_json_for(first) if dataset_type in (None, "coco") else None
    if coco is not None:
        return GroundTruth("coco", _coco_table(coco, files, names))
    return None


def yolo_label_file(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, suffix .txt."""
    parts = list(image.parts)
    k = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:k], "labels", *parts[k + 1:]).with_suffix(".txt")


def read_yolo_labels(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(xyxy boxes in image pixels, classes) from a YOLO txt file; no file means no objects."""
    if not path.is_file():
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    values = np.array([line.split()[:5] for line in path.read_text().splitlines() if line.strip()],
                      dtype=np.float64).reshape(-1, 5)
    width, height = size
    centre, extent = values[:, 1:3] * (width, height), values[:, 3:5] * (width, height)
    return np.concatenate([centre - extent / 2, centre + extent / 2], axis=1), values[:, 0].astype(np.int64)


def dataset_names(data_dir) -> list[str]:
    """Class names a labelled set gives: a YOLO data.yaml's ``names`` (a list or an index
    mapping), a COCO file's categories in id order, or the sorted names of VOC's objects."""
    root = Path(data_dir)
    yaml_path = next((root / n for n in ("data.yaml", "data.yml") if (root / n).is_file()), None)
    if yaml_path is not None:
        names = (yaml.safe_load(yaml_path.read_text()) or {}).get("names") or []
        return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    jsons = coco_jsons(root)
    if jsons:
        smallest = min(jsons.values(), key=lambda p: p.stat().st_size)
        return [c["name"] for c in sorted(_read_json(smallest).get("categories", []), key=lambda c: c["id"])]
    if (root / "Annotations").is_dir():
        return sorted({name for xml in sorted((root / "Annotations").glob("*.xml"))
                       for name, *_ in _voc_objects(xml)})
    return []


# ---- COCO -------------------------------------------------------------------------------------

def coco_jsons(root: Path) -> dict[str, Path]:
    """Split name -> annotations/instances_<split>.json below ``root``."""
    folder = root / "annotations"
    if not folder.is_dir():
        return {}
    return {p.stem[len("instances_"):]: p for p in sorted(folder.glob(COCO_JSON.format(split="*")))}


def coco_image_dir(root: Path, split: str) -> Path | None:
    """Where a COCO split's images are: images/<split>/, else <split>/."""
    return next((d for d in (root / "images" / split, root / split) if d.is_dir()), None)


def coco_json_for(image: Path) -> Path | None:
    """The instances file of the split folder an image sits in (images/<split>/ or <split>/)."""
    split_dir = image.parent
    root = split_dir.parent.parent if split_dir.parent.name == "images" else split_dir.parent
    path = root / "annotations" / COCO_JSON.format(split=split_dir.name)
    return path if path.is_file() else None


def coco_file_names(path: Path) -> set[str]:
    """The image file names a COCO file lists."""
    return {Path(image["file_name"]).name for image in _read_json(path).get("images", [])}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path} as COCO JSON: {exc}") from None


def coco_category_order(categories: list[dict], names: list[str] | None, source: Path) -> dict[int, int]:
    """Category id -> class index: by name in ``names`` when every named category is there, else
    by sorted id (COCO's 80 classes have ids 1..90 with gaps)."""
    by_id = sorted(categories, key=lambda c: c["id"])
    if names:
        position = {name: k for k, name in enumerate(names)}
        missing = [c["name"] for c in by_id if c["name"] not in position]
        if not missing:
            return {c["id"]: position[c["name"]] for c in by_id}
        if len(missing) < len(by_id):
            raise DatasetError(f"{source}: categories {missing[:5]} are not among the model's class names "
                               f"({names[:5]}...); give --labels with the names in the model's order")
    return {c["id"]: k for k, c in enumerate(by_id)}


def _coco_table(path: Path, files: list[str], names: list[str] | None) -> dict:
    data = _read_json(path)
    order = coco_category_order(data.get("categories", []), names, path)
    wanted = {Path(f).name: str(Path(f).resolve()) for f in files}
    image_of = {image["id"]: wanted[Path(image["file_name"]).name] for image in data.get("images", [])
                if Path(image["file_name"]).name in wanted}
    rows: dict[str, list] = {key: [] for key in image_of.values()}
    for ann in data.get("annotations", []):
        key = image_of.get(ann["image_id"])
        if key is None or ann.get("category_id") not in order:
            continue
        rows[key].append((*ann["bbox"], order[ann["category_id"]], CROWD if ann.get("iscrowd") else OBJECT))
    return {key: _labels(values, xywh=True) for key, values in rows.items()}


def _labels(rows: list, xywh: bool = False) -> Labels:
    if not rows:
        return _NONE
    values = np.array(rows, dtype=np.float64)
    boxes = values[:, :4].copy()
    if xywh:  # COCO: top-left corner, width, height
        boxes[:, 2:] += boxes[:, :2]
    return boxes, values[:, 4].astype(np.int64), values[:, 5].astype(np.int64)


# ---- Pascal VOC -------------------------------------------------------------------------------

def voc_split_file(root: Path, split: str) -> Path:
    return root / "ImageSets" / "Main" / f"{split}.txt"


def voc_images(root: Path, split: str | None) -> list[Path]:
    """JPEGImages of the split's ids (every annotated image without ImageSets)."""
    if split is None:
        ids = [p.stem for p in sorted((root / "Annotations").glob("*.xml"))]
    else:
        ids = [line.split()[0] for line in voc_split_file(root, split).read_text().splitlines() if line.strip()]
    return [_voc_image(root, i) for i in ids]


def _voc_image(root: Path, image_id: str) -> Path:
    jpeg = root / "JPEGImages" / f"{image_id}.jpg"
    if jpeg.exists():
        return jpeg
    return next(iter(sorted((root / "JPEGImages").glob(f"{image_id}.*"))), jpeg)


def _voc_root(image: Path) -> Path | None:
    root = image.parent.parent
    return root if image.parent.name == "JPEGImages" and (root / "Annotations").is_dir() else None


def _voc_objects(xml: Path) -> list[tuple]:
    """(name, xmin, ymin, xmax, ymax, difficult) of each object of one VOC file."""
    try:
        tree = ElementTree.parse(xml)
    except (OSError, ElementTree.ParseError) as exc:
        raise DatasetError(f"cannot read {xml} as Pascal VOC XML: {exc}") from None
    objects = []
    for obj in tree.getroot().iter("object"):
        box = obj.find("bndbox")
        if box is None:
            continue
        corners = [float(box.findtext(k)) - 1.0 for k in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((obj.findtext("name", "").strip(), *corners, obj.findtext("difficult", "0").strip() == "1"))
    return objects


def _voc_table(root: Path, files: list[str], names: list[str] | None) -> dict:
    objects = {str(Path(f).resolve()): _voc_objects(root / "Annotations" / f"{Path(f).stem}.xml")
               if (root / "Annotations" / f"{Path(f).stem}.xml").is_file() else [] for f in files}
    found = sorted({o[0] for objs in objects.values() for o in objs})
    order = list(names) if names else found
    position = {name: k for k, name in enumerate(order)}
    missing = [name for name in found if name not in position]
    if missing:
        raise DatasetError(f"{root / 'Annotations'}: objects named {missing[:5]} are not among the model's class "
                           f"names ({order[:5]}...); give --labels with the names in the model's order")
    return {key: _labels([(*o[1:5], position[o[0]], DIFFICULT if o[5] else OBJECT) for o in objs])
            for key, objs in objects.items()}
