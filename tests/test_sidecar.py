"""The recorded preprocessing is the default wherever an int8lab model is read; flags that
disagree are refused or, overridden, named; a model without a record says what it was given."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from int8lab.config import DataOptions
from int8lab.errors import UsageError
from int8lab.sidecar import has_record, resolve_preprocessing, saved_spec, tflite_input, validation_split


def test_no_flags_or_agreeing_flags_give_the_recorded_spec(fashion_int8):
    recorded = saved_spec(fashion_int8.path)
    for opts in (DataOptions(), DataOptions(preset="unit"), DataOptions(input_size=(28, 28), resize="stretch"),
                 DataOptions(preset="auto")):
        used = resolve_preprocessing(fashion_int8.path, opts)
        assert used.spec == recorded and used.origin == "recorded" and not used.notes


def test_a_disagreeing_flag_is_refused_with_both_values(fashion_int8):
    with pytest.raises(UsageError) as refused:
        resolve_preprocessing(fashion_int8.path, DataOptions(preset="imagenet", resize="letterbox"))
    said = str(refused.value)
    assert "--resize letterbox where the model has stretch" in said
    assert "--preset imagenet (mean 0.449, std 0.226) where the model has preset unit (mean 0, std 1)" in said
    assert "--override-preprocessing" in said


def test_an_override_uses_the_flags_and_names_each_difference(fashion_int8):
    used = resolve_preprocessing(fashion_int8.path, DataOptions(resize="letterbox", override_preprocessing=True))
    assert used.origin == "recorded, overridden" and used.spec.resize == "letterbox"
    assert used.spec.preset == "unit"  # what the flags leave open still comes from the record
    assert "--resize letterbox where the model has stretch" in used.notes[0]


def test_a_model_without_a_sidecar_says_which_defaults_it_took(fashion_int8, tmp_path):
    bare = tmp_path / "bare.tflite"
    shutil.copy(fashion_int8.path, bare)
    assert not has_record(bare)
    used = resolve_preprocessing(bare, DataOptions(), tflite_input(bare))
    assert used.origin == "defaults" and used.spec.input_size == (28, 28) and used.spec.channels == 1
    assert "no int8lab sidecar" in used.notes[0] and "input size 28x28 from its input tensor" in used.notes[0]
    assert "mean 0 and std 1 from its TFLite Metadata" in used.notes[0] and "resize stretch" in used.notes[0]
    assert used.spec.mean == (0.0,) and used.spec.std == (1.0,)
    given = resolve_preprocessing(bare, DataOptions(preset="unit", resize="stretch", color="rgb"), tflite_input(bare))
    assert given.spec == saved_spec(fashion_int8.path)


def test_validation_takes_the_split_quantize_held_out(tmp_path, fashion_dir):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    model.with_suffix(".tflite.json").write_text(
        f'{{"held_out": {{"data_dir": "{fashion_dir.resolve()}", "split": "held-out", "count": 5}}}}')
    assert validation_split(model, fashion_dir) == "held-out"
    assert validation_split(model, tmp_path) is None  # another folder: its own test split, or none
    assert validation_split(tmp_path / "other.tflite", fashion_dir) == "test"


def test_bench_inputs_span_the_recorded_value_range(fashion_int8):
    from int8lab.benchmark import latency_sample
    from int8lab.preprocess import resolve_preprocess_spec
    from int8lab.runtime import LiteRTModel

    model = LiteRTModel(fashion_int8.path)
    assert 0 <= latency_sample(model, saved_spec(fashion_int8.path)).min()
    spread = latency_sample(model, resolve_preprocess_spec((28, 28), preset="tf", channels=1))
    assert spread.min() < -0.9 and spread.max() > 0.9 and spread.dtype == np.float32
