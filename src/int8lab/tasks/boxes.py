"""Box geometry for detectors: decoding a YOLO output, IoU, class-aware NMS, and mapping boxes
between the model's input and the original image (the inverse of stretch, letterbox or
centre-crop).

Like ``int8lab.imageops`` this module needs only numpy (and Pillow to draw), and ``int8lab
snippet`` embeds its source verbatim in a detector's standalone inference file; ``layout`` and ``spec`` are plain
mappings (``DetectionLayout.as_dict()``, ``PreprocessSpec.as_dict()``).
"""

import numpy as np


MEDIAPIPE_NMS_IOU = 0.3  # its ObjectDetector's suppression of a model without NMS (measured on its 1.2.2 release)


def decode(output, layout, confidence=0.25, iou=0.7, max_detections=300):
    """One image's raw output -> (xyxy boxes in input pixels, scores, classes) after NMS.

    ``layout``: channel_axis (1 for [4 + classes, anchors], 2 for [anchors, channels]),
    objectness (v5 heads), end_to_end (rows x1, y1, x2, y2, score, class already selected by the
    model: no NMS), boxes ("pixels"; "normalized" by the input size; "normalized-yxhw", centre y,
    x, height, width as MediaPipe's ObjectDetector reads them), input_size, nms ("class-aware" as
    Ultralytics runs it, or "mediapipe": class-agnostic at MEDIAPIPE_NMS_IOU, whatever ``iou``)."""
    rows = output if layout["channel_axis"] == 2 else output.T  # [anchors, channels]
    boxes = rows[:, :4].astype(np.float64)
    if layout["boxes"] == "normalized-yxhw":
        boxes = boxes[:, [1, 0, 3, 2]]
    if layout["boxes"] != "pixels":
        height, width = layout["input_size"]
        boxes = boxes * np.array([width, height, width, height])
    if layout.get("end_to_end"):
        scores = rows[:, 4].astype(np.float64)
        keep = np.flatnonzero(scores >= confidence)
        keep = keep[np.argsort(-scores[keep], kind="stable")][:max_detections]
        return boxes[keep], scores[keep], np.round(rows[keep, 5]).astype(np.int64)
    scores = rows[:, 4:].astype(np.float64)
    if layout["objectness"]:
        scores = scores[:, 1:] * scores[:, :1]
    classes = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), classes]
    keep = best >= confidence
    boxes, best, classes = xywh_to_xyxy(boxes[keep]), best[keep], classes[keep]
    if layout.get("nms") == "mediapipe":
        kept = nms(boxes, best, np.zeros_like(classes), MEDIAPIPE_NMS_IOU, max_detections)
    else:
        kept = nms(boxes, best, classes, iou, max_detections)
    return boxes[kept], best[kept], classes[kept]


def xywh_to_xyxy(boxes):
    centre, size = boxes[:, :2], boxes[:, 2:4] / 2
    return np.concatenate([centre - size, centre + size], axis=1)


def box_iou(a, b):
    """Pairwise IoU of xyxy boxes: [M, 4] x [K, 4] -> [M, K]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def box_ioa(a, b):
    """Pairwise intersection over the area of ``a``: [M, 4] x [K, 4] -> [M, K]. COCO matches a
    detection to a crowd region by it (the region holds many objects; the detection one)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    return inter / np.maximum(np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)[:, None], 1e-9)


def nms(boxes, scores, classes, iou_threshold, max_detections):
    """Indices kept by greedy class-aware NMS, best score first (boxes of different classes never
    suppress each other: each class is shifted into its own region, as torchvision's batched NMS)."""
    order = np.argsort(-scores, kind="stable")
    shifted = boxes + (classes * (np.abs(boxes).max(initial=0) + 1))[:, None]
    keep = []
    while order.size and len(keep) < max_detections:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if order.size:
            order = order[box_iou(shifted[best:best + 1], shifted[order])[0] <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def to_original(boxes, original_size, spec):
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


def _mapping(width, height, out_w, out_h, spec):
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


def draw_detections(image, boxes, scores, classes, names):
    """A copy of the (upright, RGB) PIL ``image`` with each box and its label and score drawn."""
    from PIL import ImageDraw

    canvas = image.convert("RGB")
    pen = ImageDraw.Draw(canvas)
    for box, score, cls in zip(boxes, scores, classes):
        name = names[cls] if cls < len(names) else str(cls)
        pen.rectangle([float(v) for v in box], outline=(255, 64, 32), width=2)
        pen.text((float(box[0]) + 2, float(box[1]) + 1), f"{name} {score:.2f}", fill=(255, 255, 0))
    return canvas
