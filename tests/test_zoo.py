"""Real pretrained weights from registry packages (the zoo extra), as users bring them: a state
dict with --arch, an ONNX export, and a plain folder of real photos."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.zoo import ZOO  # noqa: E402
from int8lab.imageops import load_tensor  # noqa: E402
from int8lab.model.source import load_model_source  # noqa: E402
from int8lab.pipeline import quantize_job  # noqa: E402


SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "photos"  # 37 real photos, beside every checkout and CI's
pytestmark = pytest.mark.skipif(not SHARED_PHOTOS.is_dir(), reason=f"needs the real photos of {SHARED_PHOTOS}, "
                                                                     f"which a user's clone has not got")


@pytest.fixture(scope="module")
def lite1_summary(tmp_path_factory):
    entry = ZOO["lite1"]
    photos = tmp_path_factory.mktemp("photos")
    for path in sorted(SHARED_PHOTOS.iterdir()):
        shutil.copyfile(path, photos / path.name)
    source = load_model_source(entry.weights(), entry.model_options())
    return quantize_job(source, photos, tmp_path_factory.mktemp("lite1"), entry.data_options(quiet=True, target="integer",
                                                                                            compare_plans="off"))


@pytest.mark.slow
def test_thousand_logits_keep_their_argmax_in_int16(lite1_summary):
    corrections = lite1_summary["conversion"]["range_corrections"]
    assert corrections["int16_output"]["ops"] == ["FULLY_CONNECTED"]
    assert corrections["int16_output"]["classes"] == 1000  # more classes than int8 has values
    output = lite1_summary["conversion"]["tflite"]["outputs"][0]
    assert output["dtype"] == "int16" and lite1_summary["conversion"]["tflite"]["fully_integer"]
    v = lite1_summary["validation"]
    assert v["tie_rate"] == 0 and v["top1_agreement"] == v["tie_aware_top1_agreement"]


@pytest.mark.slow
def test_bias_correction_lowers_the_real_models_error_on_its_ranking_images(lite1_summary):
    bias = lite1_summary["conversion"]["range_corrections"]["bias_correction"]
    assert bias["kept"] and bias["layers"] > 60 and bias["ranking_images"] == 4  # 19 calibration photos
    assert bias["relative_error_after"] < 0.8 * bias["relative_error_before"]


@pytest.mark.slow
def test_real_model_input_scale_is_the_presets(lite1_summary):
    corrections = lite1_summary["conversion"]["range_corrections"]
    assert corrections["input_range"] == [-1.0, 1.0]
    assert lite1_summary["conversion"]["tflite"]["inputs"][0]["scale"] == pytest.approx(2 / 255)


@pytest.mark.slow
def test_real_photos_folder_is_divided_in_two(lite1_summary):
    parts = lite1_summary["data_parts"]
    assert parts["calibration_images"] + parts["held_out_images"] == len(list(SHARED_PHOTOS.iterdir()))
    assert lite1_summary["validation"]["num_images"] == parts["held_out_images"]


def test_mobilenet_v2_state_dict_loads_into_its_arch_and_names_the_baboon():
    entry = ZOO["mobilenet_v2"]
    source = load_model_source(entry.weights(), entry.model_options())
    spec = entry.data_options().spec(source.input).as_dict()
    scores = source.predict(load_tensor(SHARED_PHOTOS / "baboon.jpg", spec)[None])
    assert scores.argmax() == 372  # ImageNet's "baboon"


def test_onnx_export_from_tensorflow_is_rebuilt_like_onnx_runtime_runs_it():
    """open_nsfw: NHWC input, uneven "same" max pooling, opset 9, caffe-style BGR input."""
    import torch

    entry = ZOO["open_nsfw"]
    source = load_model_source(entry.weights(), entry.model_options())
    assert source.input.shape == (1, 224, 224, 3)
    spec = entry.data_options().spec(source.input).as_dict()
    batch = np.stack([load_tensor(path, spec) for path in sorted(SHARED_PHOTOS.iterdir())[:3]])
    with torch.no_grad():
        rebuilt = np.concatenate([source.module(torch.from_numpy(image[None])).numpy() for image in batch])
    assert np.abs(rebuilt - source.predict(batch)).max() < 1e-4  # source.predict runs ONNX Runtime
