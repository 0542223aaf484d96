"""Held-out images for validation: read batch by batch (or replayed), their labels, the float reference."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from int8lab.data.discovery import UNLABELLED
from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.data.loader import SkippedSource, chunked
from int8lab.data.tensor_store import RowReader, store_samples
from int8lab.errors import DatasetError, UsageError
from int8lab.model.source import load_model_source
from int8lab.preprocess import PreprocessSpec
from int8lab.progress import progress_enabled, track

EVAL_BATCH = 64
# A batch of images holds at most this much: 64 images of 224 x 224 x 3 float32 (38 MB), 13 of
# 640 x 640 (a YOLO's input: 64 of them took 315 MB twice over, stacked, and 1 s a set to stack).
EVAL_BATCH_BYTES = 64 * 2**20


def batch_size(image_bytes: int) -> int:
    """Images a batch takes: EVAL_BATCH, fewer for large images (at most EVAL_BATCH_BYTES of
    tensors), so memory per batch is bounded whatever the input size."""
    return max(1, min(EVAL_BATCH, EVAL_BATCH_BYTES // max(int(image_bytes), 1)))


def _rows_per_batch(tensors) -> int:
    """``batch_size`` for the rows of an array or a RowReader."""
    return batch_size(int(np.prod(tensors.shape[1:], dtype=np.int64)) * np.dtype(tensors.dtype).itemsize)


def image_batches(samples):
    """``(source index, tensor)`` samples in lists of ``batch_size`` (from the first tensor)."""
    samples = iter(samples)
    first = next(samples, None)
    if first is None:
        return
    yield from chunked(itertools.chain([first], samples), batch_size(first[1].nbytes))


@dataclass(frozen=True)
class EvalSet:
    tensors: RowReader  # in file order, on disk
    labels: np.ndarray | None  # None when the images carry no class folders
    class_names: list[str]
    files: list[str]
    skipped: list[SkippedSource] = field(default_factory=list)


def read_labels_file(path: str | Path) -> list[str]:
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not names:
        raise UsageError(f"labels file {path} is empty")
    return names


def store_eval_set(path: str | Path, data_dir, spec: PreprocessSpec, split: str | None = "test",
                   labels: list[str] | None = None, dataset_type: str = "auto",
                   progress: bool | None = None) -> EvalSet:
    """Every valid image of the split, preprocessed exactly like calibration, in file order,
    written to ``path`` (.npy) as it is decoded; the EvalSet reads them back from there batch by
    batch, so memory does not grow with the number of images."""
    generator = RepresentativeDataGenerator(data_dir, dataset_type, num_samples=None, split=split,
                                            spec=spec, progress=progress,
                                            progress_label="validation images")
    generator.order.sort()  # every source, in file order
    rows = store_samples(path, generator.generate_samples())
    index = generator.index
    class_names, label_of = class_labels(index, labels)
    return EvalSet(RowReader(path), None if label_of is None else label_of[rows], class_names,
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


def predict_batches(model, tensors, description: str = "", progress: bool | None = False):
    """``model``'s outputs for ``tensors`` (an array or a RowReader), one batch at a time."""
    size = _rows_per_batch(tensors)
    batches = range(0, len(tensors), size)
    for start in track(batches, len(batches), description, progress_enabled(progress)):
        yield model.predict(tensors[start:start + size])


class Replay:
    """Outputs computed before (an array or a RowReader), handed out batch by batch in order,
    as a model would: the lab scores every variant against the float model's stored outputs."""

    def __init__(self, outputs):
        self.outputs, self.position = outputs, 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        start, self.position = self.position, self.position + len(batch)
        return self.outputs[start:self.position]


def eval_batches(eval_set: EvalSet, reference, model):
    """``(labels or None, reference outputs, model outputs)`` for each batch of ``eval_set``:
    one batch in memory at a time."""
    tensors = eval_set.tensors
    size = _rows_per_batch(tensors)
    for start in range(0, len(tensors), size):
        batch = tensors[start:start + size]
        labels = None if eval_set.labels is None else eval_set.labels[start:start + size]
        yield labels, reference.predict(batch), model.predict(batch)
