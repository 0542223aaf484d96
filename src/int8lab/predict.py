"""Top-k predictions of a converted model on image files, preprocessed as its calibration was."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from int8lab import imageops
from int8lab.errors import UsageError
from int8lab.pipeline import read_sidecar
from int8lab.preprocess import PreprocessSpec
from int8lab.runtime import LiteRTModel


def saved_spec(model_path: str | Path) -> PreprocessSpec:
    """The preprocessing spec int8lab saved beside the model (``MODEL.tflite.json``)."""
    metadata = read_sidecar(Path(model_path))
    if not metadata.get("preprocessing"):
        raise UsageError(f"{model_path}.json (written by int8lab convert/quantize) is missing, so "
                         f"the preprocessing is unknown; give the preprocessing flags")
    return PreprocessSpec.from_dict(metadata["preprocessing"])


def predict_images(model_path: str | Path, images: list[Path], spec: PreprocessSpec,
                   labels: list[str] | None = None, top_k: int = 5,
                   threads: int | None = None) -> list[dict]:
    """One entry per image: ``{"image", "top": [{"index", "label", "score"}]}`` or ``"error"``."""
    model = LiteRTModel(model_path, threads)
    labels = labels if labels is not None else read_sidecar(Path(model_path)).get("labels") or []
    pixel_spec = spec.as_dict()
    results = []
    for image in images:
        try:
            tensor = imageops.load_tensor(image, pixel_spec)
        except imageops.ImageDecodeError as exc:
            results.append({"image": str(image), "error": exc.reason})
            continue
        scores = model.invoke(tensor[np.newaxis]).reshape(-1)
        best = np.argsort(-scores)[:top_k]
        results.append({"image": str(image), "top": [
            {"index": int(k), "label": labels[k] if k < len(labels) else str(k),
             "score": float(scores[k])} for k in best]})
    return results
