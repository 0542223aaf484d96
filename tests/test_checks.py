"""Pre-flight checks, run through convert_job on real models so the messages are the user's."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_keras_model

from int8lab.checks import PreflightError, check_batch, check_calibration_size, check_overlap
from int8lab.config import DataOptions
from int8lab.pipeline import convert_job
from int8lab.preprocess import resolve_preprocess_spec


def test_nchw_data_for_an_nhwc_model_is_an_error_that_names_the_fix(tmp_path, fashion_model, fashion_dir):
    opts = DataOptions(preset="unit", layout="nchw", quiet=True)
    with pytest.raises(PreflightError, match=r"\(1, 28, 28\) per sample \(NCHW\).*use --layout nhwc"):
        convert_job(fashion_model, fashion_dir, tmp_path / "m.tflite", opts)
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_is_an_error_that_names_the_fix(tmp_path, fashion_model, fashion_dir):
    opts = DataOptions(preset="unit", input_size=(32, 32), quiet=True)
    with pytest.raises(PreflightError, match="use --input-size 28 28"):
        convert_job(fashion_model, fashion_dir, tmp_path / "m.tflite", opts)


def test_double_normalisation_is_an_error(tmp_path, photo):
    import keras

    model = tiny_keras_model(keras.layers.Rescaling(1 / 255, name="rescale"))
    model.save(tmp_path / "rescaling.keras")
    (tmp_path / "imgs").mkdir()
    photo.save(tmp_path / "imgs" / "a.jpg")
    with pytest.raises(PreflightError, match=r"normalises its own input \(layers rescale\).*--preset raw"):
        convert_job(tmp_path / "rescaling.keras", tmp_path / "imgs", tmp_path / "m.tflite",
                    DataOptions(preset="imagenet", quiet=True))


def test_raw_pixels_for_a_rescaling_model_pass_with_a_small_calibration_warning(tmp_path, photo):
    import keras

    model = tiny_keras_model(keras.layers.Rescaling(1 / 255))
    model.save(tmp_path / "rescaling.keras")
    (tmp_path / "imgs").mkdir()
    photo.save(tmp_path / "imgs" / "a.jpg")
    result = convert_job(tmp_path / "rescaling.keras", tmp_path / "imgs", tmp_path / "m.tflite",
                         DataOptions(preset="raw", quiet=True, target="integer"))
    assert [w.check for w in result.warnings] == ["calibration-size"]
    assert result.info.fully_integer


def test_values_outside_the_preset_range_are_an_error():
    spec = resolve_preprocess_spec((4, 4), preset="unit")
    findings = check_batch(np.full((1, 4, 4, 3), 255, np.float32), spec)
    assert [f.check for f in findings] == ["range"]


def test_non_float32_calibration_is_an_error():
    spec = resolve_preprocess_spec((4, 4), preset="raw")
    assert [f.check for f in check_batch(np.zeros((1, 4, 4, 3), np.uint8), spec)] == ["dtype"]


def test_fewer_than_100_images_is_a_warning():
    assert [f.level for f in check_calibration_size(99)] == ["warning"]
    assert check_calibration_size(100) == []


def test_overlap_between_calibration_and_validation_is_an_error():
    findings = check_overlap(["/d/a.png", "/d/b.png"], ["/d/b.png", "/d/c.png"])
    assert findings[0].level == "error" and "1 images" in findings[0].message
