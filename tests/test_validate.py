from __future__ import annotations

import shutil

import numpy as np
from conftest import save_broken_files

from int8lab.data.tensor_store import RowReader
from int8lab.preprocess import resolve_preprocess_spec
from int8lab.validate import load_eval_set, store_eval_set


def test_a_stored_eval_set_is_the_loaded_one_read_from_disk(tmp_path, fashion_dir, photo):
    """Same tensors, labels, files and skipped files, in file order."""
    data = tmp_path / "data"
    for name in ("bag", "coat", "dress"):
        shutil.copytree(fashion_dir / "test" / name, data / "test" / name)
    save_broken_files(data / "test" / "coat", photo)
    spec = resolve_preprocess_spec((28, 28), channels=1, preset="unit")
    held = load_eval_set(data, spec, "test", progress=False)
    stored = store_eval_set(tmp_path / "eval.npy", data, spec, "test", progress=False)
    assert isinstance(stored.tensors, RowReader) and len(stored.tensors) == len(held.tensors) == 150
    assert np.array_equal(stored.tensors[0:150], held.tensors)
    assert np.array_equal(stored.labels, held.labels)
    assert stored.class_names == held.class_names == ["bag", "coat", "dress"]
    assert stored.files == held.files == sorted(held.files)
    assert len(stored.skipped) == len(held.skipped) == 3
