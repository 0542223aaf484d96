"""mAP as COCO computes it, accumulated image by image."""

import numpy as np

from int8lab.data.annotations import CROWD, DIFFICULT, OBJECT
from int8lab.tasks.detection_metrics import DetectionAccumulator, average_precision

TRUTH = np.array([[10, 10, 50, 50], [60, 60, 100, 120]], float)
CLASSES = np.array([0, 1])


def test_perfect_detections_score_one():
    acc = DetectionAccumulator(2)
    acc.update(TRUTH, [0.9, 0.8], CLASSES, TRUTH, CLASSES)
    result = acc.result()
    assert result["map50"] == 1.0 and result["map50_95"] == 1.0
    assert result["precision"] == 1.0 and result["recall"] == 1.0


def test_a_loose_box_counts_at_iou_50_but_not_at_95():
    acc = DetectionAccumulator(1)
    loose = np.array([[10, 10, 50, 60]], float)  # IoU 0.8 with the truth
    acc.update(loose, [0.9], [0], TRUTH[:1], [0])
    result = acc.result()
    assert result["map50"] == 1.0
    assert abs(result["map50_95"] - 0.7) < 1e-9  # hits at 0.50..0.80: 7 of 10 thresholds


def test_wrong_class_is_no_hit():
    acc = DetectionAccumulator(2)
    acc.update(TRUTH[:1], [0.9], [1], TRUTH[:1], [0])
    assert acc.result()["map50"] == 0.0


def test_a_confident_false_positive_lowers_ap():
    scores = np.array([0.95, 0.9])
    hits = np.array([False, True])
    assert abs(average_precision(scores, hits, 1) - 0.5) < 0.01


def test_merged_shards_equal_one_pass():
    whole, left, right = DetectionAccumulator(2), DetectionAccumulator(2), DetectionAccumulator(2)
    images = [(TRUTH, [0.9, 0.4], CLASSES), (TRUTH[::-1] + 3, [0.7, 0.6], CLASSES)]
    for k, (boxes, scores, classes) in enumerate(images):
        whole.update(boxes, scores, classes, TRUTH, CLASSES)
        (left if k == 0 else right).update(boxes, scores, classes, TRUTH, CLASSES)
    assert left.merge(right).result() == whole.result()


def test_images_without_detections_still_count_their_truth():
    acc = DetectionAccumulator(2)
    acc.update(TRUTH[:1], [0.9], [0], TRUTH[:1], [0])
    acc.update(np.zeros((0, 4)), [], [], TRUTH[1:], [1])
    result = acc.result()
    assert result["recall"] == 0.5 and result["map50"] == 0.5


def test_detections_on_a_crowd_region_or_a_difficult_object_count_neither_way():
    """COCO's crowd regions (matched by the share of the detection inside, any number of times) and
    VOC's difficult objects (matched once) are no ground truth to find and no false positive."""
    crowd = np.array([[0, 0, 200, 200]], float)
    inside = np.array([[120, 120, 140, 150], [150, 150, 170, 190]], float)  # small boxes wholly in the crowd
    plain, with_crowd = DetectionAccumulator(1), DetectionAccumulator(1)
    plain.update(TRUTH[:1], [0.5], [0], TRUTH[:1], [0])
    with_crowd.update(np.concatenate([TRUTH[:1], inside]), [0.5, 0.9, 0.8], [0, 0, 0],
                      np.concatenate([TRUTH[:1], crowd]), [0, 0], truth_kinds=[OBJECT, CROWD])
    assert with_crowd.result() == plain.result()
    assert with_crowd.result()["map50"] == 1.0 and with_crowd.result()["ground_truth_boxes"] == 1

    difficult = DetectionAccumulator(2)
    difficult.update(TRUTH, [0.9, 0.8], CLASSES, TRUTH, CLASSES, truth_kinds=[OBJECT, DIFFICULT])
    twice = DetectionAccumulator(2)  # a second detection on the difficult object is a false positive
    twice.update(np.concatenate([TRUTH, TRUTH[1:]]), [0.9, 0.8, 0.7], [0, 1, 1], TRUTH, CLASSES,
                 truth_kinds=[OBJECT, DIFFICULT])
    assert difficult.result()["map50"] == 1.0 and difficult.result()["ground_truth_boxes"] == 1
    assert difficult.result()["precision"] == 1.0 and twice.result()["precision"] == 0.5


def test_a_detection_costs_sixteen_bytes_and_the_figures_stay_exact():
    """Memory at scale: 300 images of 40 detections each keep 16 bytes a detection in a few
    arrays, and give the figures of the per-image arrays joined in the same order."""
    from int8lab.tasks.detection_metrics import IOU_THRESHOLDS, match

    rng = np.random.default_rng(0)
    acc, left, right = DetectionAccumulator(3), DetectionAccumulator(3), DetectionAccumulator(3)
    scores_all, hits_all, classes_all, truth_per_class = [], [], [], np.zeros(3, int)
    for image in range(300):
        truth = rng.uniform(0, 80, (4, 2)).repeat(2, axis=1) + [0, 0, 20, 20]
        truth_classes = rng.integers(0, 3, 4)
        boxes = np.repeat(truth, 10, axis=0) + rng.normal(0, 4, (40, 4))
        scores = rng.random(40).astype(np.float32)
        classes = rng.integers(0, 3, 40)
        for target in (acc, left if image % 2 else right):
            target.update(boxes, scores, classes, truth, truth_classes, image)
        hits, _ = match(boxes, scores, classes, truth, truth_classes)
        scores_all.append(scores), hits_all.append(hits), classes_all.append(classes)
        truth_per_class += np.bincount(truth_classes, minlength=3)
    assert sum(r.nbytes for r in acc.records) == 16 * 300 * 40
    assert len(acc.records) == 1 + 300 - 256  # the first 256 images' arrays joined
    scores, hits, classes = (np.concatenate(a) for a in (scores_all, hits_all, classes_all))
    order = np.lexsort((np.repeat(np.arange(300), 40), -scores))
    expected = np.mean([[average_precision(scores[order][classes[order] == c], hits[order][classes[order] == c, t],
                                           truth_per_class[c]) for t in range(len(IOU_THRESHOLDS))] for c in range(3)])
    assert acc.result()["map50_95"] == expected
    assert left.merge(right).result() == acc.result()
