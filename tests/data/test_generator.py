from __future__ import annotations

import numpy as np
import pytest
from conftest import save_broken_files, save_odd_files

from int8lab import RepresentativeDataGenerator
from int8lab.errors import DatasetError, NoValidImagesError


def make(data, **kw):
    kw.setdefault("input_size", (32, 32))
    kw.setdefault("progress", False)
    return RepresentativeDataGenerator(data, **kw)


def test_tflite_batches_are_lists_of_float32_in_the_model_layout(fashion_dir):
    batches = list(make(fashion_dir, num_samples=6, batch_size=2, layout="nchw").generate_tflite_batches())
    assert len(batches) == 3
    for batch in batches:
        assert isinstance(batch, list) and len(batch) == 1
        assert batch[0].dtype == np.float32 and batch[0].shape == (2, 3, 32, 32)


def test_generator_instance_works_as_a_representative_dataset(fashion_dir):
    generator = make(fashion_dir, num_samples=3)
    assert [b[0].shape for b in generator()] == [(1, 32, 32, 3)] * 3


def test_last_batch_holds_the_remainder(fashion_dir):
    shapes = [b.shape[0] for b in make(fashion_dir, num_samples=5, batch_size=2).generate_batches()]
    assert shapes == [2, 2, 1]


def test_same_seed_gives_identical_tensors(fashion_dir):
    first = np.concatenate(list(make(fashion_dir, num_samples=8, seed=5).generate_batches()))
    second = np.concatenate(list(make(fashion_dir, num_samples=8, seed=5, workers=1).generate_batches()))
    assert np.array_equal(first, second)


def test_another_seed_gives_other_tensors(fashion_dir):
    first = np.concatenate(list(make(fashion_dir, num_samples=8, seed=5).generate_batches()))
    other = np.concatenate(list(make(fashion_dir, num_samples=8, seed=6).generate_batches()))
    assert not np.array_equal(first, other)


def test_broken_files_are_skipped_reported_and_replaced(tmp_path, photo):
    save_odd_files(tmp_path, photo)
    broken = save_broken_files(tmp_path, photo)
    generator = make(tmp_path, dataset_type="folder", num_samples=None)
    tensors = list(generator.generate_batches())
    assert len(tensors) == len(generator.index) - len(broken)
    assert {e.path for e in generator.errors} == {str(p) for p in broken.values()}
    assert all(e.reason for e in generator.errors)


def test_statistics_count_valid_images_and_list_errors(tmp_path, photo):
    save_odd_files(tmp_path, photo)
    broken = save_broken_files(tmp_path, photo)
    stats = make(tmp_path, dataset_type="folder", num_samples=5, batch_size=2).get_statistics()
    assert stats["total_images"] == stats["total_files"] - len(broken)
    assert stats["num_samples"] == 5 and stats["num_batches"] == 3
    assert sorted(e["path"] for e in stats["errors"]) == sorted(str(p) for p in broken.values())


def test_statistics_count_classes(fashion_dir):
    stats = make(fashion_dir, num_samples=20, strategy="stratified").get_statistics()
    assert stats["class_counts"]["bag"] == 30
    assert set(stats["sample_class_counts"].values()) == {2}


def test_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(NoValidImagesError, match="no images found"):
        list(make(tmp_path).generate_batches())


def test_folder_of_only_broken_images_is_a_clear_error(tmp_path, photo):
    save_broken_files(tmp_path, photo)
    with pytest.raises(NoValidImagesError, match="could be decoded"):
        list(make(tmp_path, dataset_type="folder").generate_batches())


def test_uint8_npy_is_preprocessed_like_images(tmp_path, fashion_dir):
    pixels = np.stack([np.full((40, 40, 3), v, np.uint8) for v in (0, 128, 255)])
    np.save(tmp_path / "pixels.npy", pixels)
    out = np.concatenate(list(make(tmp_path / "pixels.npy", num_samples=None, preset="unit").generate_batches()))
    assert out.shape == (3, 32, 32, 3)
    assert sorted(np.unique(out).tolist()) == [0.0, pytest.approx(128 / 255), 1.0]


def test_float_npy_in_nchw_is_used_as_is_in_the_model_layout(tmp_path):
    values = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "ready.npy", values)
    out = np.concatenate(list(make(tmp_path / "ready.npy", num_samples=None, seed=0).generate_batches()))
    generator = make(tmp_path / "ready.npy", num_samples=None, seed=0)
    expected = values.transpose(0, 2, 3, 1)[generator.order]
    assert np.array_equal(out, expected)


def test_float_npy_of_another_size_is_a_clear_error(tmp_path):
    np.save(tmp_path / "ready.npy", np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(DatasetError, match="already preprocessed"):
        list(make(tmp_path / "ready.npy").generate_batches())
