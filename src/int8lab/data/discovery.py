"""Find the calibration images a user means, in the layouts they already have.

Discovery only lists files; nothing is decoded here. The result is a DatasetIndex: an ordered,
sorted list of sources (image files, or the rows of one array file) with their class labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from int8lab.data import annotations
from int8lab.errors import DatasetError, UsageError
from int8lab.imageops import IMAGE_EXTENSIONS

DATASET_TYPES = ("auto", "classification", "detection", "coco", "voc", "folder", "npy")
LABELLED_DETECTION = ("coco", "voc")  # layouts whose labels name their splits (int8lab.data.annotations)
SPLIT_PREFERENCE = ("val", "test")
DETECTION_SPLIT_PREFERENCE = ("val", "test", "train")
UNLABELLED = -1
# A folder without splits is divided in two, seeded and stratified by class: calibration takes
# one part, validation the other, and no image is in both.
CALIBRATION_PART = "@calibration"
HELD_OUT_PART = "@held-out"
HELD_OUT_FRACTION = 0.5
PART_SEED = 0


@dataclass(frozen=True)
class DatasetIndex:
    """What discovery found: sources in a fixed order, each with a class label or UNLABELLED."""

    dataset_type: str
    root: Path
    image_dir: Path | None  # the folder the images were listed from (None for an array file)
    split: str | None
    files: tuple[Path, ...] = ()
    labels: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    array_path: Path | None = None
    array_layout: str | None = None  # "nhwc" or "nchw", for an array file
    array_length: int = 0

    def __len__(self) -> int:
        return self.array_length if self.array_path is not None else len(self.files)

    def describe(self, i: int) -> str:
        """A human name for source i: its path, or array[i]."""
        if self.array_path is not None:
            return f"{self.array_path}[{i}]"
        return str(self.files[i])

    def class_counts(self, indices=None) -> dict[str, int]:
        """Sources per class name (over ``indices``, default all), in class-index order."""
        counts = np.bincount(
            [self.labels[i] for i in (range(len(self)) if indices is None else indices)
             if self.labels and self.labels[i] != UNLABELLED],
            minlength=len(self.class_names),
        )
        return {name: int(n) for name, n in zip(self.class_names, counts)}


def discover(path: str | Path, dataset_type: str = "auto", split: str | None = None) -> DatasetIndex:
    """List the sources below ``path`` for the given (or detected) dataset type."""
    path = Path(path).expanduser()
    if dataset_type not in DATASET_TYPES:
        raise UsageError(f"dataset type must be one of {DATASET_TYPES}, got {dataset_type!r}")
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if dataset_type == "auto":
        dataset_type = detect_dataset_type(path)
    finder = {
        "classification": _discover_classification,
        "detection": _discover_detection,
        "coco": _discover_coco,
        "voc": _discover_voc,
        "folder": _discover_folder,
        "npy": _discover_array,
    }[dataset_type]
    if split in (CALIBRATION_PART, HELD_OUT_PART):
        return part_of(finder(path, None), split)
    return finder(path, split)


def part_of(index: DatasetIndex, part: str) -> DatasetIndex:
    """One of the two disjoint parts of an index: within each class (and among unlabelled
    images), a seeded permutation of the sorted sources gives the held-out part its rounded
    share, at least one image and never all of them. Classes of one image (an ImageNet sample
    of one image a class, say) are pooled and the pool divided the same way, so that such a
    folder still has a held-out part."""
    if index.array_path is not None:
        raise DatasetError(f"{index.array_path}: an array file is not divided automatically; give "
                           f"validation images (a folder with a test/ split) instead")
    rng = np.random.default_rng(PART_SEED)
    labels = np.asarray(index.labels, dtype=np.int64)
    held_out = np.zeros(len(index.files), dtype=bool)
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    singles = [g for g in groups if len(g) == 1]
    groups = [g for g in groups if len(g) > 1] + ([np.concatenate(singles)] if len(singles) > 1 else [])
    for members in groups:
        share = int(round(len(members) * HELD_OUT_FRACTION))
        share = min(max(share, 1), len(members) - 1)
        held_out[rng.permutation(members)[:share]] = True
    keep = np.flatnonzero(held_out if part == HELD_OUT_PART else ~held_out)
    return DatasetIndex(index.dataset_type, index.root, index.image_dir, part,
                        tuple(index.files[i] for i in keep), tuple(index.labels[i] for i in keep),
                        index.class_names)


def plan_parts(path: str | Path, dataset_type: str, eval_split: str) -> tuple[str | None, str] | None:
    """``(calibration split, held-out split)`` for data that has no ``eval_split`` of its own:
    the two seeded parts of the folder; None when the data has that split (or cannot be divided:
    an array file, or a YOLO layout, whose splits come from its data.yaml). A COCO or VOC set
    with no such split is divided too: most hold labels for val (and train) only."""
    path = Path(path).expanduser()
    if dataset_type == "auto" and path.exists():
        dataset_type = detect_dataset_type(path)
    if dataset_type in LABELLED_DETECTION:
        return None if has_split(path, dataset_type, eval_split) else (CALIBRATION_PART, HELD_OUT_PART)
    if dataset_type not in ("classification", "folder") or (path / eval_split).is_dir():
        return None
    if any((path / s).is_dir() for s in (*SPLIT_PREFERENCE, "train")):
        return None  # split folders exist, just not the one asked for: let discovery say so
    return CALIBRATION_PART, HELD_OUT_PART


def has_split(path: str | Path, dataset_type: str, split: str) -> bool:
    """Whether the data holds ``split`` (a split folder, a YOLO layout's images/<split>/ or its
    data.yaml entry), found without listing any image."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return False
    if dataset_type == "auto":
        dataset_type = detect_dataset_type(path)
    if dataset_type in LABELLED_DETECTION:
        return _labelled_split_name(path, dataset_type, split) is not None
    if dataset_type == "detection":
        yaml_path = _data_yaml(path)
        if yaml_path is not None:  # discovery reads a data.yaml's entries only
            return bool((yaml.safe_load(yaml_path.read_text()) or {}).get(split))
        return (path / "images" / split).is_dir()
    return dataset_type in ("classification", "folder") and (path / split).is_dir()


def detect_dataset_type(path: Path) -> str:
    if path.is_file():
        if path.suffix.lower() == ".npy":
            return "npy"
        raise DatasetError(f"{path} is a file; give an image folder or a .npy array file")
    if _data_yaml(path) is None and annotations.coco_jsons(path):
        return "coco"
    if (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir():
        return "voc"
    if _data_yaml(path) is not None or (path / "images").is_dir():
        return "detection"
    if any((path / s).is_dir() for s in (*SPLIT_PREFERENCE, "train")):
        return "classification"
    children = [c for c in path.iterdir() if not c.name.startswith(".")]
    if children and not any(_is_image(c) for c in children) and any(
        c.is_dir() and next(iter_images(c), None) is not None for c in children
    ):
        return "classification"
    if not any(_is_image(c) for c in children) and any(c.suffix.lower() == ".npy" for c in children):
        return "npy"
    return "folder"


def iter_images(folder: Path):
    """Image files below ``folder``, recursively, in sorted order; hidden entries are skipped.

    Symbolic links are followed, but each directory is entered once (by device and inode) and
    each file listed once (by its real path): a link back up the tree (``sub/loop -> ..``) is not
    a loop, and one file reached through two symbolic links is one image. Hard links are names of
    their own, each listed."""
    seen_dirs, seen_files = set(), set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = _identity(dirpath)
        if here in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(here)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and _identity(os.path.join(dirpath, d)) not in seen_dirs)
        for name in sorted(filenames):
            candidate = Path(dirpath) / name
            if _is_image(candidate):
                real = os.path.realpath(candidate)
                if real not in seen_files:
                    seen_files.add(real)
                    yield candidate


def _identity(path) -> tuple[int, int]:
    """The directory a path leads to, through links: (device, inode)."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _is_image(path: Path) -> bool:
    return (
        not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_EXTENSIONS
        and path.is_file()
    )


def _discover_classification(path: Path, split: str | None) -> DatasetIndex:
    split_dir = _pick_split_dir(path, split, SPLIT_PREFERENCE)
    if split_dir is not None:
        # Class = the first folder under the split (sub-folders of a class stay in that class).
        image_dir, class_of = split_dir, lambda rel: rel.parts[0] if len(rel.parts) > 1 else None
    else:
        # Recursive fallback: class = the folder that holds the image.
        image_dir, class_of = path, lambda rel: rel.parts[-2] if len(rel.parts) > 1 else None
    files = sorted(iter_images(image_dir), key=lambda p: p.relative_to(image_dir).as_posix())
    names = [class_of(f.relative_to(image_dir)) for f in files]
    class_names = tuple(sorted({n for n in names if n is not None}))
    position = {name: i for i, name in enumerate(class_names)}
    labels = tuple(position[n] if n is not None else UNLABELLED for n in names)
    return DatasetIndex(
        "classification", path, image_dir, split_dir.name if split_dir else None,
        tuple(files), labels, class_names,
    )


def _discover_detection(path: Path, split: str | None) -> DatasetIndex:
    yaml_path = _data_yaml(path)
    if yaml_path is not None:
        config = yaml.safe_load(yaml_path.read_text()) or {}
        wanted = (split,) if split else DETECTION_SPLIT_PREFERENCE
        key = next((k for k in wanted if config.get(k)), None)
        if key is not None:
            files = _files_from_yaml_entry(yaml_path, config, key)
            return DatasetIndex(
                "detection", path, yaml_path.parent, key, tuple(files),
                (UNLABELLED,) * len(files),
            )
        if split:
            raise DatasetError(f"{yaml_path} has no {split!r} entry")
    images = path / "images"
    if not images.is_dir():
        raise DatasetError(f"{path} has neither a data.yaml with a val/test/train entry nor images/")
    split_dir = _pick_split_dir(images, split, DETECTION_SPLIT_PREFERENCE)
    image_dir = split_dir or images
    files = tuple(iter_images(image_dir))
    return DatasetIndex(
        "detection", path, image_dir, split_dir.name if split_dir else None,
        files, (UNLABELLED,) * len(files),
    )


def _splits(path: Path, dataset_type: str) -> list[str]:
    if dataset_type == "coco":
        return list(annotations.coco_jsons(path))
    folder = path / "ImageSets" / "Main"
    return sorted(p.stem for p in folder.glob("*.txt") if "_" not in p.stem) if folder.is_dir() else []


def _labelled_split_name(path: Path, dataset_type: str, split: str) -> str | None:
    """``split`` as the set names it: exactly, else the one split it begins (val -> val2017)."""
    splits = _splits(path, dataset_type)
    if split in splits:
        return split
    starting = [s for s in splits if s.startswith(split)]
    return starting[0] if len(starting) == 1 else None


def _pick_labelled_split(path: Path, dataset_type: str, split: str | None) -> str | None:
    available = _splits(path, dataset_type)
    if split is None:
        found = (_labelled_split_name(path, dataset_type, s) for s in DETECTION_SPLIT_PREFERENCE)
        return next((s for s in found if s), available[0] if available else None)
    name = _labelled_split_name(path, dataset_type, split)
    if name is None:
        raise DatasetError(f"{path} has no {split!r} split; {dataset_type.upper()} splits there: {available}")
    return name


def _discover_coco(path: Path, split: str | None) -> DatasetIndex:
    """A COCO set: the images annotations/instances_<split>.json lists, found in images/<split>/
    (or <split>/); those the folder lacks are left out (a subset is common)."""
    split = _pick_labelled_split(path, "coco", split)
    if split is None:
        raise DatasetError(f"{path}/annotations holds no instances_<split>.json")
    image_dir = annotations.coco_image_dir(path, split)
    if image_dir is None:
        raise DatasetError(f"{path}: found annotations/instances_{split}.json but neither images/{split}/ "
                           f"nor {split}/ beside it")
    listed = annotations.coco_file_names(path / "annotations" / annotations.COCO_JSON.format(split=split))
    files = tuple(f for f in iter_images(image_dir) if f.name in listed)
    if not files:
        raise DatasetError(f"{image_dir} holds none of the images instances_{split}.json lists")
    return DatasetIndex("coco", path, image_dir, split, files, (UNLABELLED,) * len(files))


def _discover_voc(path: Path, split: str | None) -> DatasetIndex:
    """A Pascal VOC set: JPEGImages of the ids in ImageSets/Main/<split>.txt (every annotated
    image when there is no ImageSets)."""
    split = _pick_labelled_split(path, "voc", split)
    files = tuple(f for f in annotations.voc_images(path, split) if f.is_file())
    if not files:
        raise DatasetError(f"{path}: no JPEGImages for the {split or 'annotated'} images")
    return DatasetIndex("voc", path, path / "JPEGImages", split, files, (UNLABELLED,) * len(files))


def _discover_folder(path: Path, split: str | None) -> DatasetIndex:
    if path.is_file():
        raise DatasetError(f"{path} is a file; the folder type needs a folder of images")
    image_dir = path / split if split else path
    if split and not image_dir.is_dir():
        raise DatasetError(f"{path} has no {split!r} folder")
    files = tuple(iter_images(image_dir))
    return DatasetIndex("folder", path, image_dir, split, files, (UNLABELLED,) * len(files))


def _discover_array(path: Path, split: str | None) -> DatasetIndex:
    if path.is_dir():
        arrays = sorted(p for p in path.iterdir() if p.suffix.lower() == ".npy")
        if len(arrays) != 1:
            raise DatasetError(
                f"{path} holds {len(arrays)} .npy files; name the one array file to use"
            )
        path = arrays[0]
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path} as a .npy array: {exc}") from None
    layout = array_layout(array.shape, path)
    return DatasetIndex(
        "npy", path, None, None, labels=(UNLABELLED,) * array.shape[0],
        array_path=path, array_layout=layout, array_length=int(array.shape[0]),
    )


def array_layout(shape: tuple[int, ...], path: Path) -> str:
    """NHWC or NCHW for an N-image array (N x H x W counts as grayscale NHWC)."""
    if len(shape) == 3:
        return "nhwc"
    if len(shape) == 4 and shape[3] in (1, 3):
        return "nhwc"
    if len(shape) == 4 and shape[1] in (1, 3):
        return "nchw"
    raise DatasetError(
        f"{path} has shape {shape}; expected N x H x W x C or N x C x H x W with C = 1 or 3"
    )


def _pick_split_dir(root: Path, split: str | None, preference: tuple[str, ...]) -> Path | None:
    if split:
        chosen = root / split
        if not chosen.is_dir():
            available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise DatasetError(f"{root} has no {split!r} split; folders there: {available}")
        return chosen
    return next((root / s for s in preference if (root / s).is_dir()), None)


def _data_yaml(path: Path) -> Path | None:
    if not path.is_dir():
        return None
    return next((path / n for n in ("data.yaml", "data.yml") if (path / n).is_file()), None)


def _files_from_yaml_entry(yaml_path: Path, config: dict, key: str) -> list[Path]:
    """Ultralytics style: a folder, a .txt list of images, or a list of either, under ``path:``."""
    base = Path(config.get("path") or ".")
    if not base.is_absolute():
        base = yaml_path.parent / base
    entries = config[key] if isinstance(config[key], list) else [config[key]]
    files: list[Path] = []
    for entry in entries:
        target = Path(entry) if Path(entry).is_absolute() else base / entry
        if target.is_dir():
            files.extend(iter_images(target))
        elif target.suffix.lower() == ".txt" and target.is_file():
            for line in target.read_text().splitlines():
                line = line.strip()
                if line:
                    listed = Path(line) if Path(line).is_absolute() else target.parent / line
                    files.append(listed)
        elif target.is_file():
            files.append(target)
        else:
            raise DatasetError(f"{yaml_path}: {key}: {entry} resolves to {target}, which does not exist")
    return files

