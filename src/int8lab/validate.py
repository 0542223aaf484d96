"""Validation: the quantized model against its float reference on held-out, labelled images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from int8lab.data.discovery import UNLABELLED
from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.data.loader import SkippedSource
from int8lab.errors import DatasetError, UsageError
from int8lab.evaluate import agreement_metrics, labelled_metrics
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
    class_names = list(labels) if labels else list(index.class_names)
    label_of = None
    if index.class_names and all(index.labels[i] != UNLABELLED for i in rows):
        position = {name: k for k, name in enumerate(class_names)}
        missing = sorted(set(index.class_names) - set(position))
        if missing:
            raise DatasetError(f"class folders {missing} are not in the labels file")
        label_of = np.array([position[index.class_names[index.labels[i]]] for i in rows])
    return EvalSet(tensors, label_of, class_names, [index.describe(i) for i in rows],
                   list(generator.errors))


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


def compare_models(reference_out: np.ndarray, quantized_out: np.ndarray, eval_set: EvalSet) -> dict:
    results = {"num_images": int(len(eval_set.tensors)), "class_names": eval_set.class_names,
               **agreement_metrics(reference_out, quantized_out)}
    if eval_set.labels is not None:
        for name, out in (("reference", reference_out), ("quantized", quantized_out)):
            metrics = labelled_metrics(eval_set.labels, out, eval_set.class_names)
            results[f"accuracy_{name}"] = metrics["accuracy"]
            results[name] = metrics
        results["accuracy_drop_points"] = 100 * (results["accuracy_reference"]
                                                 - results["accuracy_quantized"])
    else:
        results["accuracy_reference"] = results["accuracy_quantized"] = None
    results["skipped_files"] = [s.as_dict() for s in eval_set.skipped]
    return results
