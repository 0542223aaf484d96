"""The detection task: layouts, decoding and YOLO labels."""

from pathlib import Path

import numpy as np
import pytest

from int8lab.errors import UsageError
from int8lab.tasks.registry import infer_task
from int8lab.tasks.detect import decode, resolve_layout

DATA = Path(__file__).resolve().parents[2] / "examples" / "detect" / "data"


def _raw(channels_first=True):
    """Eight anchors: one box of class 1 at (40, 30) 20x10 px, the others weak."""
    rows = np.array([[40, 30, 20, 10, 0.1, 0.9]] + [[80, 80, 10, 10, 0.05, 0.02]] * 7, np.float32)
    return rows.T if channels_first else rows


def test_output_shape_says_the_task():
    assert infer_task((1, 14, 525)) == "detect"
    assert infer_task((1, 525, 14)) == "detect"
    assert infer_task((1, 10)) == "classify"
    assert infer_task((1, 10), "detect") == "detect"


def test_layout_of_v8_and_v5_heads():
    assert resolve_layout((1, 14, 525), (160, 160), 10).channel_axis == 1
    v5 = resolve_layout((1, 525, 15), (160, 160), 10)
    assert v5.objectness and v5.channel_axis == 2
    with pytest.raises(UsageError, match="neither"):
        resolve_layout((1, 14, 525), (160, 160), 3)


@pytest.mark.parametrize("channels_first", [True, False])
def test_decode_gives_xyxy_boxes_above_the_threshold(channels_first):
    layout = resolve_layout((1, *_raw(channels_first).shape), (160, 160), 2)
    boxes, scores, classes = decode(_raw(channels_first), layout)
    assert boxes.tolist() == [[30, 25, 50, 35]]
    assert classes.tolist() == [1] and np.allclose(scores, [0.9])


def test_decode_multiplies_normalised_boxes_back():
    layout = resolve_layout((1, 6, 8), (100, 200), 2).with_boxes("normalized")
    raw = _raw() / np.array([[200], [100], [200], [100], [1], [1]], np.float32)
    assert np.allclose(decode(raw, layout)[0], [[30, 25, 50, 35]])


def test_end_to_end_rows_are_read_without_nms_and_need_the_class_count():
    layout = resolve_layout((1, 300, 6), (160, 160), 10)
    assert layout.end_to_end and layout.num_classes == 10
    rows = np.zeros((300, 6), np.float32)
    rows[0] = [10, 10, 50, 50, 0.9, 3]
    rows[1] = [12, 11, 50, 50, 0.8, 3]  # overlapping, same class: an NMS-free head keeps both
    boxes, scores, classes = decode(rows, layout)
    assert boxes.tolist() == [[10, 10, 50, 50], [12, 11, 50, 50]] and classes.tolist() == [3, 3]
    with pytest.raises(UsageError, match="class names"):
        resolve_layout((1, 300, 6), (160, 160))
