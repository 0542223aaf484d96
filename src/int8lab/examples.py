"""The images a report shows: where the float and int8 models differ most, and a few where they
agree, found on a bounded number of held-out images (int8lab.predict on both .tflite files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from int8lab.preprocess import PreprocessSpec

POOL = 48  # held-out images looked at, whatever the dataset size
DIFFERENT, AGREEING = 4, 2  # detector pairs shown
CHANGED = 8  # classifier images whose top-1 changed, shown at most
MATCH_IOU = 0.5


def report_examples(float_model: Path, int8_model: Path, images: list[str], spec: PreprocessSpec,
                    labels: list[str] | None = None) -> dict:
    """``{"task", "pool", "images": [{"image", "float", "int8", "difference"}]}``: a detector's
    boxes or a classifier's top 3 from both models, most different first."""
    from int8lab.predict import predict_images

    ordered = sorted(images)  # evenly spaced over the set: its classes and folders, not the first one's
    pool = ordered[::max(1, len(ordered) // POOL)][:POOL]
    floats = predict_images(float_model, [Path(p) for p in pool], spec, labels, top_k=3)
    ints = predict_images(int8_model, [Path(p) for p in pool], spec, labels, top_k=3)
    pairs = [(f, q) for f, q in zip(floats, ints) if "error" not in f and "error" not in q]
    detect = any("detections" in f for f, _ in pairs)
    rows = [{"image": f["image"], "float": f.get("detections", f.get("top")), "int8": q.get("detections", q.get("top")),
             "difference": _box_difference(f["detections"], q["detections"]) if detect
             else float(f["top"][0]["index"] != q["top"][0]["index"])} for f, q in pairs]
    rows.sort(key=lambda r: -r["difference"])
    if detect:
        chosen = rows[:DIFFERENT] + [r for r in rows[DIFFERENT:] if r["difference"] == 0][:AGREEING]
    else:
        chosen = [r for r in rows if r["difference"] > 0][:CHANGED] or rows[:AGREEING]
    return {"task": "detect" if detect else "classify", "pool": len(pairs), "images": chosen}


def _box_difference(reference: list[dict], quantized: list[dict]) -> float:
    """Detections one model has and the other not (same class, IoU >= 0.5), plus how far the
    matched boxes moved (1 - IoU each)."""
    unmatched, moved = 0, 0.0
    left = list(quantized)
    for det in sorted(reference, key=lambda d: -d["score"]):
        candidates = [(iou(det["box"], other["box"]), k) for k, other in enumerate(left) if other["class"] == det["class"]]
        best = max(candidates, default=(0.0, None))
        if best[0] >= MATCH_IOU:
            moved += 1 - best[0]
            left.pop(best[1])
        else:
            unmatched += 1
    return unmatched + len(left) + moved


def iou(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
