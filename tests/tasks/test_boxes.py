"""Box geometry: class-aware NMS and the inverse of each resize mode."""

import numpy as np
import pytest
from PIL import Image

from int8lab.imageops import resize_image
from int8lab.preprocess import resolve_preprocess_spec
from int8lab.tasks.boxes import box_iou, nms, to_original


def test_nms_suppresses_overlaps_of_one_class_only():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, classes, 0.5, 300).tolist() == [0, 2, 3]


def test_nms_stops_at_max_detections():
    boxes = np.array([[k * 20, 0, k * 20 + 10, 10] for k in range(5)], float)
    assert len(nms(boxes, np.linspace(0.9, 0.5, 5), np.zeros(5, int), 0.5, 3)) == 3


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "center-crop"])
def test_to_original_undoes_the_resize_of_a_real_photo(photo, resize):
    """A box drawn as a white square on the photo lands, after preprocessing, where mapping the
    model-input box back says (within one input pixel)."""
    spec = resolve_preprocess_spec((160, 128), preset="unit", resize=resize, interpolation="nearest").as_dict()
    canvas = np.asarray(photo).copy() * 0
    x1, y1, x2, y2 = 200, 120, 300, 220
    canvas[y1:y2, x1:x2] = 255
    moved = np.asarray(resize_image(Image.fromarray(canvas), spec))[:, :, 0] > 127
    ys, xs = np.nonzero(moved)
    box_in_input = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
    back = to_original(box_in_input, photo.size, spec)[0]
    scale = max(photo.width / 128, photo.height / 160)
    assert np.abs(back - [x1, y1, x2, y2]).max() <= 1.5 * scale


def test_box_iou_of_disjoint_and_identical_boxes():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    assert np.allclose(box_iou(a, a), np.eye(2))
