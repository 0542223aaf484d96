"""MediaPipe Tasks as a real client: its own ImageClassifier runs the model int8lab wrote with
--target mediapipe, and names the same class as `int8lab predict`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import int8lab

from int8lab import imageops
from int8lab.runtime import LiteRTModel

mp = pytest.importorskip("mediapipe", reason="the mediapipe extra (make installs it)")


@pytest.mark.slow
def test_mediapipe_image_classifier_agrees_with_predict(tmp_path, mobilenet_model, fashion_dir):
    from mediapipe.tasks import python as tasks
    from mediapipe.tasks.python import vision

    model = tmp_path / "model_int8.tflite"
    int8lab("convert", mobilenet_model, "--data", fashion_dir, "--preset", "tf", "--backend", "aeq",
            "--target", "mediapipe", "-o", model, "-q")
    sidecar = json.loads((tmp_path / "model_int8.tflite.json").read_text())
    spec, labels = sidecar["preprocessing"], sidecar["labels"]
    assert sidecar["mode"] == "int8-float-io" and sidecar["tflite"]["fully_integer"]
    ours = LiteRTModel(model)
    files = sorted((fashion_dir / "test").glob("*/*.png"))
    agree = 0
    options = vision.ImageClassifierOptions(base_options=tasks.BaseOptions(model_asset_path=str(model)), max_results=1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in files:
            # MediaPipe gets the RGB pixels at model size (its own resize differs from Pillow's),
            # and normalises them itself, from the metadata.
            pixels = np.asarray(imageops.resize_image(imageops.decode_image(path, spec), spec).convert("RGB"))
            best = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels)))
            category = best.classifications[0].categories[0]
            top = int(ours.predict(imageops.load_tensor(path, spec)[None]).argmax())
            agree += category.index == top and category.category_name == labels[top]
    assert agree / len(files) >= 0.99, f"{agree} of {len(files)}"
