from __future__ import annotations

import subprocess
import sys

import numpy as np
from conftest import save_broken_files

from int8lab import RepresentativeDataGenerator, create_representative_dataset_module, export_npy
from int8lab.preprocess import PreprocessSpec


def make_kwargs(options):
    return dict(num_samples=12, batch_size=4, input_size=(28, 28), progress=False, **options)


def make(data, **options):
    return RepresentativeDataGenerator(data, **make_kwargs(options))


def test_export_npy_writes_the_generator_tensors_named_by_shape(tmp_path, fashion_dir):
    path = export_npy(make(fashion_dir, channels=1, preset="unit"), tmp_path)
    expected = np.concatenate(list(make(fashion_dir, channels=1, preset="unit").generate_batches()))
    assert path.name == "12x28x28x1.npy"
    saved = np.load(path)
    assert saved.dtype == np.float32 and np.array_equal(saved, expected)


def test_export_npy_saves_the_spec_and_the_skipped_files(tmp_path, fashion_dir, photo):
    data = tmp_path / "data"
    save_broken_files(data, photo)
    photo.save(data / "fine.jpg")
    generator = make(data, dataset_type="folder", preset="tf")
    export_npy(generator, tmp_path / "out")
    assert PreprocessSpec.load(tmp_path / "out" / "preprocess.json") == generator.spec
    skipped = (tmp_path / "out" / "error_files.txt").read_text().splitlines()
    assert len(skipped) == 3 and all("\t" in line for line in skipped)


def test_generated_module_yields_the_same_tensors_with_numpy_and_pillow_only(tmp_path, fashion_dir):
    options = dict(strategy="stratified", seed=9, layout="nchw", color="bgr", resize="letterbox")
    module = create_representative_dataset_module(fashion_dir, tmp_path / "rep.py", **make_kwargs(options))
    probe = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import rep; "
        "batches = [b[0] for b in rep.representative_data_gen()]; "
        "np.save(sys.argv[2], np.concatenate(batches)); "
        "print([m for m in ('int8lab', 'tensorflow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(module.parent), str(tmp_path / "m.npy")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # neither int8lab nor TensorFlow was imported
    expected = np.concatenate(list(make(fashion_dir, **options).generate_batches()))
    assert np.array_equal(np.load(tmp_path / "m.npy"), expected)


def test_generated_module_for_an_array_file_yields_the_same_tensors(tmp_path):
    np.save(tmp_path / "px.npy", np.random.default_rng(1).integers(0, 255, (20, 40, 30, 3), np.uint8))
    module = create_representative_dataset_module(tmp_path / "px.npy", tmp_path / "rep_npy.py",
                                                  **make_kwargs({}))
    namespace = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)
    got = np.concatenate([b[0] for b in namespace["representative_data_gen"]()])
    expected = np.concatenate(list(make(tmp_path / "px.npy").generate_batches()))
    assert np.array_equal(got, expected)
