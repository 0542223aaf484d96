from __future__ import annotations

import numpy as np
import pytest

from int8lab.evaluate import agreement_metrics, confusion_matrix, g_mean, labelled_metrics, per_class_scores


def one_hot(indices, classes=3):
    return np.eye(classes)[indices]


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_precision_and_recall_per_class():
    precision, recall = per_class_scores(np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0]]))
    assert precision.tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    assert recall.tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_g_mean_is_zero_when_a_present_class_is_never_recognised():
    assert g_mean(np.array([0.5, 1.0, 0.0]), np.array([True, True, True])) == 0.0
    assert g_mean(np.array([0.25, 1.0, 0.0]), np.array([True, True, False])) == pytest.approx(0.5)


def test_labelled_metrics_accuracy_and_macro_scores():
    metrics = labelled_metrics(np.array([0, 1, 2, 2]), one_hot([0, 1, 2, 1]), ["a", "b", "c"])
    assert metrics["accuracy"] == 0.75
    assert metrics["recall_macro"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert metrics["per_class"]["c"] == {"precision": 1.0, "recall": 0.5, "support": 2}


def test_agreement_counts_top1_and_top5_and_errors():
    reference = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    quantized = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]])
    metrics = agreement_metrics(reference, quantized)
    assert metrics["top1_agreement"] == 0.5 and metrics["top5_agreement"] == 1.0
    assert metrics["max_abs_output_error"] == pytest.approx(0.4)
    assert metrics["mean_cosine_similarity"] < 1


def test_accumulated_batches_give_the_whole_array_figures():
    """Streaming validation: any split into batches gives exactly the one-pass metrics."""
    from int8lab.evaluate import ClassificationAccumulator

    rng = np.random.default_rng(0)
    reference, quantized = rng.random((103, 7)), rng.random((103, 7))
    labels = rng.integers(0, 7, 103)
    names = list("abcdefg")
    whole = {**agreement_metrics(reference, quantized), "quantized": labelled_metrics(labels, quantized, names)}
    left, right = ClassificationAccumulator(names, True), ClassificationAccumulator(names, True)
    for start in range(0, 103, 10):
        part = left if start < 50 else right
        part.update(reference[start:start + 10], quantized[start:start + 10], labels[start:start + 10])
    streamed = left.merge(right).result()
    for key in ("top1_agreement", "top5_agreement", "mean_abs_output_error", "max_abs_output_error",
                "mean_cosine_similarity"):
        assert streamed[key] == pytest.approx(whole[key], rel=1e-12)
    assert streamed["quantized"] == whole["quantized"]
    assert streamed["num_images"] == 103
