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
    return matrix_metrics(confusion_matrix(labels, scores.argmax(axis=1), len(class_names)), class_names)


G_MEAN_SUPPORT = 5  # below this many images in a class, its recall is too coarse for a G-mean
MOST_CONFUSED = 10


def matrix_metrics(matrix: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, macro precision/recall, G-mean and per-class scores, all from the confusion
    matrix; the most confused (true, predicted) pairs; and why the G-mean means nothing, when a
    class has too few images for its recall to be more than 0 or 1."""
    precision, recall = per_class_scores(matrix)
    support = matrix.sum(axis=1)
    present = support > 0
    thin = int((present & (support < G_MEAN_SUPPORT)).sum())
    off_diagonal = matrix - np.diag(np.diag(matrix))
    order = np.argsort(-off_diagonal, axis=None)[:MOST_CONFUSED]
    pairs = [(int(k // len(matrix)), int(k % len(matrix))) for k in order]
    return {
        "accuracy": float(np.trace(matrix) / matrix.sum()),
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "g_mean": g_mean(recall, present),
        "g_mean_note": (f"n/a: {thin} of {int(present.sum())} classes have fewer than {G_MEAN_SUPPORT} images, so "
                        f"their recall is 0 or 1 and the geometric mean is 0 or chance" if thin else None),
        "per_class": {name: {"precision": float(p), "recall": float(r), "support": int(s)}
                      for name, p, r, s in zip(class_names, precision, recall, support)},
        "most_confused": [{"true": class_names[t], "predicted": class_names[q], "images": int(matrix[t, q])}
                          for t, q in pairs if matrix[t, q] > 0],
        "confusion_matrix": matrix.tolist(),
    }


def agreement_sums(reference: np.ndarray, quantized: np.ndarray) -> dict:
    """Counts and sums behind ``agreement_metrics``: they add up across batches."""
    ref_top1 = reference.argmax(axis=1)
    k = min(5, reference.shape[1])
    quant_top5 = np.argsort(-quantized, axis=1)[:, :k]
    flat_ref, flat_quant = reference.reshape(len(reference), -1), quantized.reshape(len(quantized), -1)
    norms = np.linalg.norm(flat_ref, axis=1) * np.linalg.norm(flat_quant, axis=1)
    cosine = np.divide((flat_ref * flat_quant).sum(axis=1), norms, out=np.ones(len(norms)), where=norms > 0)
    error = np.abs(flat_ref - flat_quant)
    # Quantized scores tied at the top: argmax (an app's, and ours) takes the lowest index.
    at_top = quantized == quantized.max(axis=1, keepdims=True)
    return {"images": len(reference), "top1": int((quantized.argmax(axis=1) == ref_top1).sum()),
            "tied": int((at_top.sum(axis=1) > 1).sum()), "top1_among_tied": int(at_top[np.arange(len(ref_top1)), ref_top1].sum()),
            "top5": int((quant_top5 == ref_top1[:, None]).any(axis=1).sum()),
            "abs_error_sum": float(error.sum(dtype=np.float64)), "values": int(error.size),
            "abs_error_max": float(error.max()), "cosine_sum": float(cosine.sum(dtype=np.float64))}


def agreement_from_sums(sums: dict) -> dict:
    return {
        "top1_agreement": sums["top1"] / sums["images"],
        "tie_rate": sums["tied"] / sums["images"],
        "tie_aware_top1_agreement": sums["top1_among_tied"] / sums["images"],
        "top5_agreement": sums["top5"] / sums["images"],
        "mean_abs_output_error": sums["abs_error_sum"] / sums["values"],
        "max_abs_output_error": sums["abs_error_max"],
        "mean_cosine_similarity": sums["cosine_sum"] / sums["images"],
    }


def agreement_metrics(reference: np.ndarray, quantized: np.ndarray) -> dict:
    """How closely the quantized outputs follow the reference outputs, image by image."""
    return agreement_from_sums(agreement_sums(reference, quantized))


class ClassificationAccumulator:
    """The figures of ``agreement_metrics`` and ``labelled_metrics``, accumulated batch by batch:
    counts, sums and two confusion matrices, whatever the number of images (constant memory)."""

    def __init__(self, class_names: list[str], labelled: bool):
        self.class_names = list(class_names)
        self.labelled = labelled
        self.sums: dict | None = None
        size = len(self.class_names)
        self.confusion = {"reference": np.zeros((size, size), np.int64), "quantized": np.zeros((size, size), np.int64)}

    def update(self, reference: np.ndarray, quantized: np.ndarray, labels: np.ndarray | None = None) -> None:
        reference = reference.reshape(len(reference), -1)
        quantized = quantized.reshape(len(quantized), -1)
        self._add(agreement_sums(reference, quantized))
        if self.labelled:
            for name, out in (("reference", reference), ("quantized", quantized)):
                self.confusion[name] += confusion_matrix(labels, out.argmax(axis=1), len(self.class_names))

    def merge(self, other: "ClassificationAccumulator") -> "ClassificationAccumulator":
        if other.sums is not None:
            self._add(other.sums)
        for name in self.confusion:
            self.confusion[name] = self.confusion[name] + other.confusion[name]  # Ray hands back read-only arrays
        return self

    def _add(self, sums: dict) -> None:
        if self.sums is None:
            self.sums = dict(sums)
            return
        for key, value in sums.items():
            self.sums[key] = max(self.sums[key], value) if key == "abs_error_max" else self.sums[key] + value

    def result(self) -> dict:
        results = {"num_images": self.sums["images"], "class_names": self.class_names,
                   **agreement_from_sums(self.sums)}
        if not self.labelled:
            return {**results, "accuracy_reference": None, "accuracy_quantized": None}
        for name, matrix in self.confusion.items():
            results[name] = matrix_metrics(matrix, self.class_names)
            results[f"accuracy_{name}"] = results[name]["accuracy"]
        results["accuracy_drop_points"] = 100 * (results["accuracy_reference"] - results["accuracy_quantized"])
        return results
