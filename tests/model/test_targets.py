"""The precision plan each target resolves to (int8lab.model.targets)."""

import pytest

from int8lab.errors import UsageError
from int8lab.model.targets import mode_for_target, other_plan
from int8lab.preprocess import resolve_preprocess_spec

SPEC = resolve_preprocess_spec((48, 48), preset="tf")


def test_the_default_cpu_plan_is_integer_kernels_with_float_io_and_says_why():
    mode, why = mode_for_target("auto", "cpu", SPEC)
    assert mode == "int8-float-io" and "XNNPACK" in why and "--target integer" in why


def test_a_fully_integer_model_is_one_target_away():
    mode, why = mode_for_target("auto", "integer", SPEC)
    assert mode == "int8" and "NPU" in why


def test_a_mode_the_user_names_is_kept():
    assert mode_for_target("int16x8", "cpu", SPEC) == ("int16x8", None)
    assert mode_for_target("int8-float-io", "integer", SPEC) == ("int8-float-io", None)


def test_the_plans_compare_with_each_other_and_mediapipe_has_none():
    assert other_plan("cpu") == "integer" and other_plan("integer") == "cpu" and other_plan("mediapipe") is None


def test_an_unknown_target_names_the_known_ones():
    with pytest.raises(UsageError, match="cpu, integer, mediapipe"):
        mode_for_target("auto", "litert", SPEC)
