"""Validation: the quantized model against its float reference on held-out, labelled images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from int8lab.data.discovery import UNLABELLED
from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.data.loader import SkippedSource
from int8lab.errors import DatasetError, UsageError
from int8lab.model.source import load_model_source
from int8lab.preprocess import PreprocessSpec
from int8lab.progress import progress_enabled, track

EVAL_BATCH = 64


@dataclass(frozen=True)
class EvalSet:
    tensors: np.ndarray
    labels: np.ndarray | None  # None when the images carry no class folders
    class_names: list[str]
    files: list[str]
    skipped: list[SkippedSource] = field(default_factory=list)


def read_labels_file(path: str | Path) -> list[str]:
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not names:
        raise UsageError(f"labels file {path} is empty")
    return names


def load_eval_set(data_dir, spec: PreprocessSpec, split: str | None = "test",
                  labels: list[str] | None = None, dataset_type: str = "auto",
                  progress: bool | None = None) -> EvalSet:
    """Every valid image of the split, preprocessed exactly like calibration, in file order."""
    generator = RepresentativeDataGenerator(data_dir, dataset_type, num_samples=None, split=split,
                                            spec=spec, progress=progress,
                                            progress_label="validation images")
    samples = sorted(generator.generate_samples(), key=lambda pair: pair[0])
    index = generator.index
    rows = [i for i, _ in samples]
    tensors = np.stack([t for _, t in samples])
    class_names, label_of = class_labels(index, labels)
    return EvalSet(tensors, None if label_of is None else label_of[rows], class_names,
                   [index.describe(i) for i in rows], list(generator.errors))


def class_labels(index, labels: list[str] | None = None) -> tuple[list[str], np.ndarray | None]:
    """The class names (``labels``, else the class folders) and each source's class index in
    them, or None when the images carry no class (no folders, or an image outside them)."""
    class_names = list(labels) if labels else list(index.class_names)
    if not index.class_names or any(label == UNLABELLED for label in index.labels):
        return class_names, None
    position = {name: k for k, name in enumerate(class_names)}
    missing = sorted(set(index.class_names) - set(position))
    if missing:
        raise DatasetError(f"class folders {missing} are not in the labels file")
    return class_names, np.array([position[name] for name in index.class_names])[np.array(index.labels)]


def load_reference(path: str | Path):
    """A float model to compare against: Keras/SavedModel (run in TF) or a float .tflite."""
    return load_model_source(path)


def predict_all(model, tensors: np.ndarray, description: str, progress: bool | None = None,
                flatten: bool = True) -> np.ndarray:
    """Outputs for every tensor, batch by batch: one row of scores each, or (``flatten=False``)
    each output in its own shape (a detector's [channels, anchors])."""
    batches = range(0, len(tensors), EVAL_BATCH)
    outputs = np.concatenate([model.predict(tensors[i:i + EVAL_BATCH])
                              for i in track(batches, len(batches), description, progress_enabled(progress))])
    return outputs.reshape(len(tensors), -1) if flatten else outputs
