from __future__ import annotations

import shutil

import numpy as np
from conftest import save_broken_files

from int8lab.data.discovery import discover
from int8lab.imageops import load_tensor
from int8lab.preprocess import resolve_preprocess_spec
from int8lab.evalset import store_eval_set


def test_a_stored_eval_set_holds_every_valid_image_in_file_order(tmp_path, fashion_dir, photo):
    """Its rows, read back from disk, are the images' tensors; labels, files and skips match."""
    data = tmp_path / "data"
    for name in ("bag", "coat", "dress"):
        shutil.copytree(fashion_dir / "test" / name, data / "test" / name)
    broken = save_broken_files(data / "test" / "coat", photo)
    spec = resolve_preprocess_spec((28, 28), channels=1, preset="unit")
    stored = store_eval_set(tmp_path / "eval.npy", data, spec, "test", progress=False)
    index = discover(data, "auto", "test")
    valid = [k for k, path in enumerate(index.files) if path not in broken.values()]
    assert len(stored.tensors) == len(valid) == 150
    assert np.array_equal(stored.tensors[0:150], np.stack([load_tensor(index.files[k], spec.as_dict()) for k in valid]))
    assert stored.files == [index.describe(k) for k in valid]
    assert stored.class_names == ["bag", "coat", "dress"]
    assert stored.labels.tolist() == [k // 50 for k in range(150)]
    assert sorted(s.path for s in stored.skipped) == sorted(index.describe(index.files.index(p)) for p in broken.values())
