"""Detection metrics that stream: COCO-style mAP50 and mAP50-95 (101-point interpolation), and
precision/recall at the confidence threshold, accumulated image by image.

Only one small record per detection (score, class, hit or ignored at each IoU threshold) and a
count of ground-truth boxes per class are kept; no image or tensor is. Two accumulators merge
exactly, so shards of an evaluation set can be scored apart and combined.

Ground truth the evaluation ignores, as COCO's and VOC's own do: a COCO crowd region
(``iscrowd``) or a VOC ``difficult`` object counts toward no class's boxes, and a detection
matched to one is neither a hit nor a miss. A detection is matched to a regular box first; a
crowd region is matched by the share of the detection inside it and can take any number of
detections, a difficult object one.
"""

from __future__ import annotations

import numpy as np

from int8lab.data.annotations import CROWD, OBJECT
from int8lab.tasks.boxes import box_ioa, box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0, 1, 101)


# One detection's record: 16 bytes (its hit and ignored flags, one bit per IoU threshold), where
# five float64/int64/bool arrays an image took 44 bytes a detection and 5 array headers an image:
# at 300 detections an image and three accumulators, 2 GB on 50,000 labelled images.
RECORD = np.dtype([("score", np.float32), ("image", np.int32), ("cls", np.int32), ("hits", np.uint16),
                   ("ignored", np.uint16)])
THRESHOLD_BITS = (1 << np.arange(len(IOU_THRESHOLDS))).astype(np.uint16)
COMPACT_EVERY = 256  # arrays of images with detections joined into one: the per-array overhead stays small


class DetectionAccumulator:
    def __init__(self, num_classes: int, confidence: float = 0.25):
        self.num_classes = num_classes
        self.confidence = confidence  # the operating point precision and recall are read at
        self.records: list[np.ndarray] = []  # RECORD arrays; ``image`` orders equal scores
        self._recent = 0  # arrays appended since the last join
        self.truth_per_class = np.zeros(num_classes, dtype=np.int64)
        self.images = 0

    def update(self, boxes, scores, classes, truth_boxes, truth_classes, image_id: int | None = None,
               truth_kinds=None) -> None:
        """One image: detections (xyxy, score, class) against its ground truth (xyxy, class, and
        optionally each box's kind: OBJECT, DIFFICULT or CROWD). ``image_id`` (default: the running
        count) orders equal scores, so that shards of an evaluation set merge into exactly the
        figures of one pass."""
        classes, truth_classes = np.asarray(classes, np.int64), np.asarray(truth_classes, np.int64)
        kinds = np.zeros(len(truth_classes), np.int64) if truth_kinds is None else np.asarray(truth_kinds, np.int64)
        image_id = self.images if image_id is None else image_id
        self.images += 1
        self.truth_per_class = self.truth_per_class + np.bincount(truth_classes[kinds == OBJECT],
                                                                  minlength=self.num_classes)[:self.num_classes]
        if not len(scores):
            return
        hits, ignored = match(np.asarray(boxes), np.asarray(scores), classes,
                              np.asarray(truth_boxes).reshape(-1, 4), truth_classes, kinds)
        record = np.empty(len(scores), RECORD)
        record["score"], record["image"], record["cls"] = scores, image_id, classes
        record["hits"], record["ignored"] = hits @ THRESHOLD_BITS, ignored @ THRESHOLD_BITS
        self.records.append(record)
        self._recent += 1
        if self._recent == COMPACT_EVERY:  # the last images' arrays as one
            self.records[-COMPACT_EVERY:] = [np.concatenate(self.records[-COMPACT_EVERY:])]
            self._recent = 0

    def merge(self, other: "DetectionAccumulator") -> "DetectionAccumulator":
        self.records += other.records
        self.truth_per_class = self.truth_per_class + other.truth_per_class  # Ray hands back read-only arrays
        self.images += other.images
        return self

    def result(self) -> dict:
        records = np.concatenate(self.records) if self.records else np.zeros(0, RECORD)
        records = records[np.lexsort((records["image"], -records["score"]))]  # the same in any merge order
        scores, classes = records["score"].astype(np.float64), records["cls"]
        hits, ignored = ((records[flag][:, None] & THRESHOLD_BITS) > 0 for flag in ("hits", "ignored"))
        present = np.flatnonzero(self.truth_per_class > 0)
        ap = np.array([[_class_ap(scores, hits[:, t], (classes == c) & ~ignored[:, t], self.truth_per_class[c])
                        for t in range(len(IOU_THRESHOLDS))] for c in present]).reshape(len(present), len(IOU_THRESHOLDS))
        confident = (scores >= self.confidence) & ~ignored[:, 0]
        true_positives = int(hits[confident, 0].sum())
        truth = int(self.truth_per_class.sum())
        return {
            "map50": float(ap[:, 0].mean()) if len(present) else None,
            "map50_95": float(ap.mean()) if len(present) else None,
            "precision": true_positives / int(confident.sum()) if confident.any() else None,
            "recall": true_positives / truth if truth else None,
            "ap50_per_class": {int(c): float(a) for c, a in zip(present, ap[:, 0])},
            "ground_truth_boxes": truth,
            "images": self.images,
        }


def _class_ap(scores, hits, keep, truth: int) -> float:
    return average_precision(scores[keep], hits[keep], truth)


def match(boxes, scores, classes, truth_boxes, truth_classes, truth_kinds=None) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching: detections by descending score each take the unmatched ground-truth
    box of their class with the highest IoU, at each IoU threshold; one that finds none may fall
    on an ignored box (a free difficult object, or any crowd region by the share of the
    detection inside it) and is then ignored. -> (hits, ignored), each [detections, thresholds]."""
    hits = np.zeros((len(scores), len(IOU_THRESHOLDS)), dtype=bool)
    ignored = np.zeros_like(hits)
    if not len(truth_boxes) or not len(scores):
        return hits, ignored
    kinds = np.zeros(len(truth_boxes), np.int64) if truth_kinds is None else np.asarray(truth_kinds)
    overlap = box_iou(boxes, truth_boxes)
    crowd = kinds == CROWD
    if crowd.any():
        overlap[:, crowd] = box_ioa(boxes, truth_boxes[crowd])
    overlap *= classes[:, None] == truth_classes[None, :]
    regular = kinds == OBJECT
    order = np.argsort(-scores, kind="stable")
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(truth_boxes), dtype=bool)
        for d in order:
            candidates = np.where(taken | ~regular, -1.0, overlap[d])
            best = int(candidates.argmax())
            if candidates[best] >= threshold:
                taken[best] = hits[d, t] = True
                continue
            candidates = np.where(regular | (taken & ~crowd), -1.0, overlap[d])
            best = int(candidates.argmax())
            if candidates[best] >= threshold:
                ignored[d, t] = True
                taken[best] = not crowd[best]
    return hits, ignored


def average_precision(scores: np.ndarray, hits: np.ndarray, truth: int) -> float:
    """Area under the interpolated precision-recall curve, sampled at 101 recall points (COCO)."""
    if truth == 0 or not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(hits[order])
    recall = true_positives / truth
    precision = true_positives / np.arange(1, len(order) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.where(at < len(envelope), envelope[np.minimum(at, len(envelope) - 1)], 0.0).mean())
