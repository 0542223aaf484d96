"""The `int8lab` command as a user runs it: a real subprocess, real files, real exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
from conftest import int8lab, save_broken_files

FASHION_FLAGS = ["--input-size", "28", "28", "--channels", "1", "--preset", "unit", "-q"]


def test_inspect_json_has_the_documented_fields(fashion_dir):
    out = json.loads(int8lab("data", "inspect", fashion_dir, "--json", "--num-samples", 10,
                             "--batch-size", 4, *FASHION_FLAGS).stdout)
    assert out["dataset_type"] == "classification" and out["total_images"] == 300
    assert out["num_batches"] == 3 and out["errors"] == []
    assert out["class_counts"]["trouser"] == 30
    assert [b["shape"] for b in out["test_batches"]] == [[4, 28, 28, 1]] * 2 + [[2, 28, 28, 1]]
    assert all(b["dtype"] == "float32" and 0 <= b["min"] <= b["max"] <= 1 for b in out["test_batches"])


def test_inspect_prints_a_readable_summary(fashion_dir):
    out = int8lab("data", "inspect", fashion_dir, *FASHION_FLAGS).stdout
    assert "classification" in out and "300 valid of 300 files" in out and "Test batches" in out


def test_inspect_json_lists_skipped_files(tmp_path, photo):
    broken = save_broken_files(tmp_path, photo)
    photo.save(tmp_path / "fine.jpg")
    out = json.loads(int8lab("data", "inspect", tmp_path, "--json", "-q", "--test-batches", 1).stdout)
    assert out["total_images"] == 1
    assert sorted(e["path"] for e in out["errors"]) == sorted(str(p) for p in broken.values())


def test_empty_folder_exits_2_with_a_message_not_a_traceback(tmp_path):
    result = int8lab("data", "inspect", tmp_path, "-q", check=False)
    assert result.returncode == 2
    assert "error: no images found" in result.stderr and "Traceback" not in result.stderr


def test_bad_option_exits_2_with_a_message(fashion_dir):
    result = int8lab("data", "inspect", fashion_dir, "--preset", "yolo", check=False)
    assert result.returncode == 2 and "unknown preset" in result.stderr


def test_export_npy_writes_array_errors_and_spec(tmp_path, fashion_dir):
    int8lab("data", "export-npy", fashion_dir, "-o", tmp_path, "--num-samples", 7, *FASHION_FLAGS)
    array = np.load(tmp_path / "7x28x28x1.npy")
    assert array.dtype == np.float32 and array.shape == (7, 28, 28, 1)
    assert (tmp_path / "error_files.txt").read_text() == ""
    assert json.loads((tmp_path / "preprocess.json").read_text())["channels"] == 1


def test_module_command_writes_an_importable_module(tmp_path, fashion_dir):
    target = tmp_path / "representative_dataset.py"
    int8lab("data", "module", fashion_dir, "-o", target, "--num-samples", 5, *FASHION_FLAGS)
    namespace = {}
    exec(compile(target.read_text(), str(target), "exec"), namespace)
    assert len(list(namespace["representative_data_gen"]())) == 5


def test_thousands_of_empty_files_are_summarised_not_listed(tmp_path, photo_paths):
    """Issue 12: a folder of zero-byte files is read once and reported in a few lines."""
    shutil.copy(photo_paths[0], tmp_path / "real.jpg")
    for k in range(5000):
        (tmp_path / f"empty_{k:05d}.jpg").touch()
    result = int8lab("data", "inspect", tmp_path, "--input-size", "32", "32", "-q")
    assert "1 valid of 5001 files" in result.stdout
    assert "4,990 more" in result.stdout and "5,000 x empty file (0 bytes)" in result.stdout
    assert len(result.stdout.splitlines()) < 60


def test_broken_files_are_decoded_once_across_passes(tmp_path, photo_paths, monkeypatch):
    from int8lab import imageops
    from int8lab.data.generator import RepresentativeDataGenerator

    shutil.copy(photo_paths[0], tmp_path / "real.jpg")
    for k in range(20):
        (tmp_path / f"broken_{k}.jpg").write_bytes(b"not an image")
    calls = []
    decode = imageops.decode_image
    monkeypatch.setattr(imageops, "decode_image", lambda path, spec: calls.append(path) or decode(path, spec))
    generator = RepresentativeDataGenerator(tmp_path, "folder", input_size=(16, 16), progress=False, workers=1)
    for _ in range(3):
        list(generator.generate_samples())
    assert len(generator.errors) == 20 and len(calls) == 21 + 2  # 21 once, then the good one each pass
