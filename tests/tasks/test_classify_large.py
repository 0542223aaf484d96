"""ImageNet-size label sets: the confusion figures and files stay small, the G-mean says when it is
meaningless."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from int8lab.evaluate import ClassificationAccumulator, matrix_metrics
from int8lab.tasks import classify

CLASSES = [f"n{k:08d}" for k in range(1000)]


def one_image_per_class() -> ClassificationAccumulator:
    """500 images of 500 of the 1000 classes, one each; the quantized model misses 10% of them."""
    rng = np.random.default_rng(0)
    accumulator = ClassificationAccumulator(CLASSES, True)
    labels = np.arange(0, 1000, 2)
    for batch in np.array_split(np.arange(len(labels)), 10):
        reference = rng.normal(size=(len(batch), 1000)).astype(np.float32)
        reference[np.arange(len(batch)), labels[batch]] += 10
        quantized = reference.copy()
        missed = rng.random(len(batch)) < 0.1
        quantized[missed, (labels[batch][missed] + 1) % 1000] += 20
        accumulator.update(reference, quantized, labels[batch])
    return accumulator


def test_a_thousand_class_validation_writes_small_figures_and_files(tmp_path):
    state = classify.State(one_image_per_class())
    results = classify.finish(state, {"class_names": CLASSES}, tmp_path)
    quantized = results["quantized"]
    assert quantized["confusion_matrix"] is None and np.load(tmp_path / "confusion_quantized.npy").shape == (1000, 1000)
    assert np.load(tmp_path / "confusion_quantized.npy").sum() == 500
    with Image.open(tmp_path / quantized["confusion_png"]) as image:
        assert max(image.size) < 1200  # a fixed-size heat map, not 0.55 inch a class
    assert len(json.dumps(results)) < 500_000
    assert quantized["g_mean_note"].startswith("n/a: 500 of 500 classes")
    assert quantized["most_confused"][0]["images"] == 1
    report = "\n".join(classify.report_rows(results) + classify.report_details(results))
    assert "| G-mean | n/a | n/a |" in report and "lowest recall" in report and "Most confused" in report
    assert report.count("\n| n0") <= 30 + 10


def test_a_few_classes_keep_their_matrix_in_json_and_their_g_mean():
    matrix = np.array([[8, 2], [1, 9]])
    metrics = matrix_metrics(matrix, ["a", "b"])
    assert metrics["g_mean_note"] is None and metrics["confusion_matrix"] == [[8, 2], [1, 9]]
    assert metrics["most_confused"][0] == {"true": "a", "predicted": "b", "images": 2}
