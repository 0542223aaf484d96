"""Metrics comparing a quantized model with its float reference: pure functions over arrays."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall (sensitivity) per class; 0 where a class is never predicted/present."""
    hits = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    return precision, recall


def g_mean(recall: np.ndarray, present: np.ndarray) -> float:
    """Geometric mean of the recalls of the classes present: 0 if any present class is missed."""
    values = recall[present]
    return float(np.exp(np.mean(np.log(values)))) if values.size and values.min() > 0 else 0.0


def labelled_metrics(labels: np.ndarray, scores: np.ndarray, class_names: list[str]) -> dict:
    predictions = scores.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(class_names))
    precision, recall = per_class_scores(matrix)
    present = matrix.sum(axis=1) > 0
    return {
        "accuracy": float((predictions == labels).mean()),
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "g_mean": g_mean(recall, present),
        "per_class": {name: {"precision": float(p), "recall": float(r), "support": int(s)}
                      for name, p, r, s in zip(class_names, precision, recall, matrix.sum(axis=1))},
        "confusion_matrix": matrix.tolist(),
    }


def agreement_metrics(reference: np.ndarray, quantized: np.ndarray) -> dict:
    """How closely the quantized outputs follow the reference outputs, image by image."""
    ref_top1 = reference.argmax(axis=1)
    k = min(5, reference.shape[1])
    quant_top5 = np.argsort(-quantized, axis=1)[:, :k]
    flat_ref, flat_quant = reference.reshape(len(reference), -1), quantized.reshape(len(quantized), -1)
    norms = np.linalg.norm(flat_ref, axis=1) * np.linalg.norm(flat_quant, axis=1)
    cosine = np.divide((flat_ref * flat_quant).sum(axis=1), norms, out=np.ones(len(norms)), where=norms > 0)
    return {
        "top1_agreement": float((quantized.argmax(axis=1) == ref_top1).mean()),
        "top5_agreement": float((quant_top5 == ref_top1[:, None]).any(axis=1).mean()),
        "mean_abs_output_error": float(np.abs(flat_ref - flat_quant).mean()),
        "max_abs_output_error": float(np.abs(flat_ref - flat_quant).max()),
        "mean_cosine_similarity": float(cosine.mean()),
    }
