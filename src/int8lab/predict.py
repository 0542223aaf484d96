"""Top-k predictions of a converted model on image files, preprocessed as its calibration was."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from int8lab import imageops
from int8lab.atomic import atomic_write
from int8lab.sidecar import read_sidecar
from int8lab.preprocess import PreprocessSpec
from int8lab.runtime import LiteRTModel


def predict_images(model_path: str | Path, images: list[Path], spec: PreprocessSpec,
                   labels: list[str] | None = None, top_k: int = 5,
                   threads: int | None = None, draw_dir: Path | None = None) -> list[dict]:
    """One entry per image, or ``{"image", "error"}``. A classifier gives ``"top": [{"index",
    "label", "score"}]``; a detector ``"detections": [{"box" (x1, y1, x2, y2 in the image's
    pixels), "class", "label", "score"}]`` and, with ``draw_dir``, ``"drawn"``: a PNG of them."""
    from int8lab.tasks.registry import infer_task

    model = LiteRTModel(model_path, threads)
    sidecar = read_sidecar(Path(model_path))
    labels = labels if labels is not None else sidecar.get("labels") or []
    task = infer_task(tuple(model.output["shape"]), (sidecar.get("task") or {}).get("name") or "auto")
    layout = None
    pixel_spec = spec.as_dict()
    results = []
    for image in images:
        try:
            tensor = imageops.load_tensor(image, pixel_spec)
        except imageops.ImageDecodeError as exc:
            results.append({"image": str(image), "error": exc.reason})
            continue
        if task == "detect" and layout is None:
            from int8lab.tasks.detect import layout_of

            layout = layout_of(model, sidecar, spec, labels, tensor)
        output = model.invoke(tensor[np.newaxis])
        if layout is not None:
            results.append(_detections(Path(image), output[0], layout, pixel_spec, labels, draw_dir))
            continue
        scores = output.reshape(-1)
        best = np.argsort(-scores)[:top_k]
        results.append({"image": str(image), "top": [
            {"index": int(k), "label": _label(labels, k), "score": float(scores[k])} for k in best]})
    return results


def _label(labels: list[str], k: int) -> str:
    return labels[k] if k < len(labels) else str(k)


def _detections(image: Path, output: np.ndarray, layout, pixel_spec: dict, labels: list[str],
                draw_dir: Path | None) -> dict:
    from int8lab.tasks.boxes import draw_detections, to_original
    from int8lab.tasks.detect import decode

    boxes, scores, classes = decode(output, layout)
    boxes = to_original(boxes, imageops.upright_size(image), pixel_spec)
    entry = {"image": str(image), "detections": [
        {"box": [round(float(v), 1) for v in box], "class": int(c), "label": _label(labels, int(c)),
         "score": float(s)} for box, s, c in zip(boxes, scores, classes)]}
    if draw_dir is not None:
        from PIL import Image, ImageOps

        Path(draw_dir).mkdir(parents=True, exist_ok=True)
        with Image.open(image) as img:
            drawn = draw_detections(ImageOps.exif_transpose(img), boxes, scores, classes, labels)
        target = Path(draw_dir) / f"{image.stem}_boxes.png"
        with atomic_write(target) as handle:
            drawn.save(handle, format="PNG")
        entry["drawn"] = str(target)
    return entry
