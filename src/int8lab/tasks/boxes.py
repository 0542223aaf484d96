"""Box geometry for detectors: IoU, class-aware NMS, and mapping boxes between the model's input
and the original image (the inverse of stretch, letterbox or centre-crop). Pure numpy."""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    centre, size = boxes[:, :2], boxes[:, 2:4] / 2
    return np.concatenate([centre - size, centre + size], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: [M, 4] x [K, 4] -> [M, K]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
        max_detections: int) -> np.ndarray:
    """Indices kept by greedy class-aware NMS, best score first (boxes of different classes never
    suppress each other: each class is shifted into its own region, as torchvision's batched NMS)."""
    order = np.argsort(-scores, kind="stable")
    shifted = boxes + (classes * (np.abs(boxes).max(initial=0) + 1))[:, None]
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if order.size:
            order = order[box_iou(shifted[best:best + 1], shifted[order])[0] <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def to_original(boxes: np.ndarray, original_size: tuple[int, int], spec: dict) -> np.ndarray:
    """xyxy boxes in model-input pixels -> pixels of the original (upright) image, undoing the
    spec's resize exactly as ``imageops.resize_image`` did it; clipped to the image."""
    width, height = original_size
    out_h, out_w = spec["input_size"]
    scale_x, scale_y, offset_x, offset_y = _mapping(width, height, out_w, out_h, spec)
    mapped = boxes.astype(np.float64).copy()
    mapped[:, [0, 2]] = (mapped[:, [0, 2]] - offset_x) / scale_x
    mapped[:, [1, 3]] = (mapped[:, [1, 3]] - offset_y) / scale_y
    mapped[:, [0, 2]] = mapped[:, [0, 2]].clip(0, width)
    mapped[:, [1, 3]] = mapped[:, [1, 3]].clip(0, height)
    return mapped


def _mapping(width: int, height: int, out_w: int, out_h: int, spec: dict):
    """(scale x, scale y, offset x, offset y): input = original * scale + offset."""
    mode = spec["resize"]
    if mode == "stretch":
        return out_w / width, out_h / height, 0.0, 0.0
    if mode == "letterbox":
        ratio = min(out_h / height, out_w / width)
        new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
        return new_w / width, new_h / height, (out_w - new_w) // 2, (out_h - new_h) // 2
    ratio = max(out_h / height, out_w / width) / spec["crop_pct"]  # center-crop
    new_w, new_h = max(out_w, round(width * ratio)), max(out_h, round(height * ratio))
    return new_w / width, new_h / height, -((new_w - out_w) // 2), -((new_h - out_h) // 2)
