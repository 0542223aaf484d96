"""COCO JSON and Pascal VOC sets read as their YOLO conversion reads: the example detector's test
labels written in each layout give the same boxes, classes and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from labelled_sets import DATA, NAMES, write_coco, write_voc, yolo_labels

from int8lab.data.annotations import CROWD, DIFFICULT, OBJECT, coco_category_order, dataset_names, ground_truth
from int8lab.data.discovery import discover, has_split, plan_parts
from int8lab.errors import DatasetError
from int8lab.imageops import upright_size

@pytest.mark.parametrize("layout", ["coco", "voc"])
def test_a_coco_or_voc_set_gives_the_yolo_labels(tmp_path, layout):
    root = (write_coco if layout == "coco" else write_voc)(tmp_path / layout)
    index = discover(root)
    assert index.dataset_type == layout and index.split == "test"
    assert has_split(root, "auto", "test") and not has_split(root, "auto", "val")
    expected = list(yolo_labels("test"))
    assert [f.name for f in index.files] == [image.name for image, _, _ in expected]
    truth = ground_truth([str(f) for f in index.files], NAMES)
    assert truth.layout == layout
    for file, (_, size, (boxes, classes)) in zip(index.files, expected):
        got_boxes, got_classes, kinds = truth.of(file, size)
        assert np.allclose(got_boxes, boxes, atol=1e-9) and got_classes.tolist() == classes.tolist()
        assert (kinds == OBJECT).all()
    assert dataset_names(root) == (NAMES if layout == "coco" else sorted({NAMES[c] for _, _, (_, cs) in expected
                                                                         for c in cs}))


def test_crowd_regions_and_difficult_objects_are_marked(tmp_path):
    coco = write_coco(tmp_path / "coco", crowd_first=True)
    voc = write_voc(tmp_path / "voc", difficult_first=True)
    for root, kind in ((coco, CROWD), (voc, DIFFICULT)):
        index = discover(root)
        first = index.files[0]
        _, _, kinds = ground_truth([str(f) for f in index.files], NAMES).of(first, upright_size(first))
        assert (kinds == kind).sum() == 1


def test_coco_ids_map_by_name_to_the_model_else_by_sorted_id():
    categories = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    assert coco_category_order(categories, None, Path("x.json")) == {1: 0, 3: 1, 90: 2}
    assert coco_category_order(categories, ["car", "person", "bus", "toothbrush"], Path("x.json")) == \
        {3: 0, 1: 1, 90: 3}
    with pytest.raises(DatasetError, match="not among the model's class names"):
        coco_category_order(categories, ["person", "bus"], Path("x.json"))


def test_a_set_without_the_validation_split_is_divided_and_the_split_found_by_prefix(tmp_path):
    root = write_coco(tmp_path / "coco", split="val2017")
    assert discover(root, split="val").split == "val2017"
    assert plan_parts(root, "auto", "test") is not None
    assert plan_parts(write_coco(tmp_path / "coco_test", split="test"), "auto", "test") is None
    with pytest.raises(DatasetError, match="no 'train' split"):
        discover(root, split="train")


def test_a_set_with_yolo_txt_and_coco_json_is_read_as_discovery_found_it(tmp_path):
    """Ultralytics' COCO holds both: without a data.yaml it is a COCO set (crowds and all); with
    one, the YOLO layout it names."""
    root = write_coco(tmp_path / "both", crowd_first=True)
    (root / "labels").mkdir()
    (root / "labels" / "test").symlink_to(DATA / "labels" / "test")
    for with_yaml, layout in ((False, "coco"), (True, "yolo")):
        if with_yaml:
            (root / "data.yaml").write_text("path: .\ntest: images/test\nnames: " + str(NAMES) + "\n")
        index = discover(root, split="test")
        truth = ground_truth([str(f) for f in index.files], NAMES, index.dataset_type)
        assert truth.layout == layout
        first = index.files[0]
        assert ((truth.of(first, upright_size(first))[2] == CROWD).sum() == 1) == (layout == "coco")
