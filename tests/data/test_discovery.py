from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from conftest import PHOTOS

from int8lab.data.discovery import (
    CALIBRATION_PART,
    HELD_OUT_PART,
    UNLABELLED,
    detect_dataset_type,
    discover,
    plan_parts,
)
from int8lab.errors import DatasetError


def fill(folder, count=2):
    folder.mkdir(parents=True, exist_ok=True)
    for photo in sorted(PHOTOS.glob("*.jpg"))[:count]:
        shutil.copy(photo, folder / photo.name)
    return folder


def test_classification_prefers_val(classification_tree):
    index = discover(classification_tree)
    assert index.dataset_type == "classification" and index.split == "val"
    assert index.class_names == ("cat_a", "cat_b", "cat_c")


def test_classification_falls_back_to_test(classification_tree):
    shutil.rmtree(classification_tree / "val")
    index = discover(classification_tree)
    assert index.split == "test" and index.class_names == ("cat_a", "cat_b")


def test_classification_recursive_fallback_uses_the_holding_folder(tmp_path):
    fill(tmp_path / "train" / "dog")
    fill(tmp_path / "extra" / "nested" / "cat")
    index = discover(tmp_path, "classification")
    assert index.split is None
    assert index.class_names == ("cat", "dog")
    assert len(index) == 4


def test_class_folders_without_splits_are_detected_as_classification(tmp_path):
    fill(tmp_path / "dog")
    fill(tmp_path / "cat")
    assert detect_dataset_type(tmp_path) == "classification"


def test_class_index_is_the_sorted_folder_position(classification_tree):
    index = discover(classification_tree)
    for path, label in zip(index.files, index.labels):
        assert index.class_names[label] == path.parent.name


def test_split_option_overrides_the_preference(classification_tree):
    assert discover(classification_tree, split="test").split == "test"


def test_missing_split_names_the_folders_there(classification_tree):
    with pytest.raises(DatasetError, match=r"no 'calib' split.*\['test', 'val'\]"):
        discover(classification_tree, split="calib")


def test_stray_non_image_files_are_ignored(tmp_path):
    fill(tmp_path / "pics")
    (tmp_path / "pics" / "notes.txt").write_text("not an image")
    (tmp_path / "pics" / "labels.csv").write_text("a,b")
    (tmp_path / "pics" / ".hidden.jpg").write_bytes(b"")
    assert len(discover(tmp_path, "folder")) == 2


def test_extensions_are_case_insensitive(tmp_path):
    fill(tmp_path, 1)
    photo = next(tmp_path.glob("*.jpg"))
    photo.rename(tmp_path / "SHOUT.JPEG")
    assert [p.name for p in discover(tmp_path, "folder").files] == ["SHOUT.JPEG"]


def test_folder_type_finds_images_recursively(tmp_path):
    fill(tmp_path / "a" / "b")
    fill(tmp_path, 1)
    index = discover(tmp_path, "folder")
    assert len(index) == 3 and set(index.labels) == {UNLABELLED}


def test_yolo_layout_reads_images_val(tmp_path):
    fill(tmp_path / "images" / "train", 3)
    fill(tmp_path / "images" / "val", 1)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    index = discover(tmp_path)
    assert index.dataset_type == "detection" and index.split == "val" and len(index) == 1


def test_data_yaml_val_pointing_elsewhere_is_honoured(tmp_path):
    fill(tmp_path / "elsewhere" / "calib_imgs", 2)
    fill(tmp_path / "dataset" / "images" / "val", 1)
    (tmp_path / "dataset" / "data.yaml").write_text(yaml.safe_dump(
        {"path": "..", "train": "elsewhere/calib_imgs", "val": "elsewhere/calib_imgs", "names": {0: "x"}}))
    index = discover(tmp_path / "dataset")
    assert index.split == "val" and len(index) == 2
    assert all("calib_imgs" in str(f) for f in index.files)


def test_data_yaml_txt_list_is_read(tmp_path):
    images = fill(tmp_path / "imgs", 3)
    listing = tmp_path / "val.txt"
    listing.write_text("\n".join(f"./imgs/{p.name}" for p in sorted(images.iterdir())[:2]) + "\n")
    (tmp_path / "data.yaml").write_text("val: val.txt\n")
    assert len(discover(tmp_path)) == 2


def test_data_yaml_pointing_nowhere_is_a_clear_error(tmp_path):
    (tmp_path / "data.yaml").write_text("val: images/missing\n")
    with pytest.raises(DatasetError, match="does not exist"):
        discover(tmp_path)


@pytest.mark.parametrize("shape,layout", [((5, 16, 16, 3), "nhwc"), ((5, 3, 16, 16), "nchw"),
                                          ((5, 16, 16), "nhwc")])
def test_npy_layout_is_read_from_the_shape(tmp_path, shape, layout):
    np.save(tmp_path / "calib.npy", np.zeros(shape, np.uint8))
    index = discover(tmp_path / "calib.npy")
    assert index.dataset_type == "npy" and index.array_layout == layout and len(index) == 5


def test_npy_of_an_unknown_shape_is_a_clear_error(tmp_path):
    np.save(tmp_path / "calib.npy", np.zeros((5, 16, 16, 7), np.float32))
    with pytest.raises(DatasetError, match="expected N x H x W x C"):
        discover(tmp_path / "calib.npy")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        discover(tmp_path / "nope")


def test_a_symlink_loop_is_entered_once(tmp_path, photo_paths):
    """Issue 12: 11 valid images, 3 broken files and `sub/loop -> ..` give 11 images, 3 skipped."""
    from int8lab.data.generator import RepresentativeDataGenerator

    sub = tmp_path / "sub"
    sub.mkdir()
    for k in range(11):
        photo = photo_paths[k % len(photo_paths)]
        shutil.copy(photo, (tmp_path if k % 2 else sub) / f"{k}{photo.suffix}")
    for k in range(3):
        (tmp_path / f"broken_{k}.jpg").write_bytes(b"not a jpeg" * k)
    (sub / "loop").symlink_to("..")
    generator = RepresentativeDataGenerator(tmp_path, "folder", num_samples=None, input_size=(32, 32),
                                            progress=False)
    tensors = list(generator.generate_samples())
    assert len(generator.index) == 14
    assert len(tensors) == 11 and len(generator.errors) == 3


def test_one_file_through_two_links_counts_once(tmp_path, photo_paths):
    shutil.copy(photo_paths[0], tmp_path / "a.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    assert len(discover(tmp_path, "folder")) == 1


def test_hard_links_are_images_of_their_own(tmp_path, photo_paths):
    shutil.copy(photo_paths[0], tmp_path / "a.jpg")
    (tmp_path / "b.jpg").hardlink_to(tmp_path / "a.jpg")
    assert len(discover(tmp_path, "folder")) == 2


def plain_classes(root, sizes):
    for k, size in enumerate(sizes):
        fill(root / f"class_{k}", size)
    return root


def test_plain_folder_parts_are_disjoint_and_cover_it(tmp_path):
    folder = fill(tmp_path / "photos", 5)
    whole = discover(folder)
    calibration, held_out = discover(folder, split=CALIBRATION_PART), discover(folder, split=HELD_OUT_PART)
    assert not set(calibration.files) & set(held_out.files)
    assert set(calibration.files) | set(held_out.files) == set(whole.files)
    assert (len(whole), len(calibration), len(held_out)) == (5, 3, 2)  # round(5 * 0.5) = 2 held out


def test_plain_folder_parts_are_the_same_every_time(tmp_path):
    folder = fill(tmp_path / "photos", 9)
    assert discover(folder, split=HELD_OUT_PART).files == discover(folder, split=HELD_OUT_PART).files


def test_class_folders_are_divided_class_by_class(tmp_path):
    root = plain_classes(tmp_path / "classes", (4, 6, 1))
    held_out = discover(root, split=HELD_OUT_PART)
    assert held_out.class_counts() == {"class_0": 2, "class_1": 3, "class_2": 0}  # a class of one calibrates
    assert discover(root, split=CALIBRATION_PART).class_counts() == {"class_0": 2, "class_1": 3, "class_2": 1}


def test_classes_of_one_image_each_are_pooled_so_some_are_held_out(tmp_path):
    """An ImageNet sample of one image a class still has a held-out part."""
    root = plain_classes(tmp_path / "classes", (1,) * 6)
    held_out, calibration = discover(root, split=HELD_OUT_PART), discover(root, split=CALIBRATION_PART)
    assert (len(held_out), len(calibration)) == (3, 3)
    assert not set(held_out.files) & set(calibration.files)


def test_parts_are_planned_only_without_split_folders(tmp_path, classification_tree):
    assert plan_parts(fill(tmp_path / "photos", 2), "auto", "test") == (CALIBRATION_PART, HELD_OUT_PART)
    assert plan_parts(classification_tree, "auto", "test") is None
    shutil.rmtree(classification_tree / "test")
    assert plan_parts(classification_tree, "auto", "test") is None  # val/ alone: say the split is missing
