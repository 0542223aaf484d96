from __future__ import annotations

import json

import pytest

from int8lab.errors import UsageError
from int8lab.preprocess import PRESETS, PreprocessSpec, resolve_preprocess_spec


def test_spec_json_round_trips(tmp_path):
    spec = PreprocessSpec(input_size=(10, 20), channels=1, mean=(0.5,), std=(0.25,), preset="custom")
    assert PreprocessSpec.from_dict(json.loads(spec.to_json())) == spec


def test_bgr_reorders_the_preset_statistics():
    spec = resolve_preprocess_spec((8, 8), preset="imagenet", color="bgr")
    assert spec.mean == PRESETS["imagenet"][0][::-1] and spec.std == PRESETS["imagenet"][1][::-1]


def test_one_channel_averages_the_preset_statistics():
    spec = resolve_preprocess_spec((8, 8), preset="imagenet", channels=1)
    assert spec.mean == pytest.approx((sum(PRESETS["imagenet"][0]) / 3,))


def test_explicit_mean_and_std_override_the_preset():
    spec = resolve_preprocess_spec((8, 8), mean=(0.1, 0.2, 0.3), std=(0.5,))
    assert spec.preset == "custom" and spec.mean == (0.1, 0.2, 0.3) and spec.std == (0.5, 0.5, 0.5)


def test_value_range_follows_the_preset():
    assert resolve_preprocess_spec((8, 8), preset="tf").value_range() == (-1.0, 1.0)
    assert resolve_preprocess_spec((8, 8), preset="raw").value_range() == pytest.approx((0.0, 255.0))


def test_input_shape_follows_the_layout():
    assert resolve_preprocess_spec((8, 6), layout="nchw").input_shape(2) == (2, 3, 8, 6)
    assert resolve_preprocess_spec((8, 6)).input_shape(2) == (2, 8, 6, 3)


@pytest.mark.parametrize("options,message", [
    ({"preset": "yolo"}, "unknown preset"),
    ({"resize": "squash"}, "resize must be"),
    ({"crop_pct": 1.5}, "crop_pct"),
    ({"layout": "hwc"}, "layout must be"),
    ({"channels": 4}, "channels must be"),
    ({"mean": (0.1, 0.2)}, "mean and std need 3"),
    ({"std": (0.0,)}, "std must be positive"),
])
def test_impossible_options_are_refused_with_a_reason(options, message):
    with pytest.raises(UsageError, match=message):
        resolve_preprocess_spec((8, 8), **options)
