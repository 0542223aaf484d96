"""Where the time goes (int8lab.op_profile): each op timed alone under the kernel that runs it."""

import numpy as np

from int8lab.benchmark import latency_sample
from int8lab.model.tflite_info import inspect_tflite
from int8lab.op_profile import op_profile, profile_summary
from int8lab.runtime import LiteRTModel, delegation


def test_every_op_is_timed_under_the_kernel_the_whole_model_gives_it(fashion_int8, fashion_fp32_tflite):
    for content in (fashion_fp32_tflite.read_bytes(), fashion_int8.path.read_bytes()):
        times = op_profile(content, latency_sample(LiteRTModel(content)), threads=1)
        refused = {tensor for _, tensor in delegation(content).fallback_ops()}
        assert len(times) == sum(inspect_tflite(content).op_histogram.values())
        assert all(t.ms is not None and t.ms >= 0 for t in times)
        assert {t.tensor for t in times if not t.xnnpack} == refused
        summary = profile_summary(times)
        assert np.isclose(summary["total_ms"], summary["xnnpack_ms"] + summary["builtin_ms"])
        assert summary["top"][0]["ms"] == max(r["ms"] for r in summary["top"])


def test_the_int8_plan_of_mobilenetv3_shows_its_hard_swishes_on_the_built_in_kernels(mobilenet_model, fashion_dir):
    """The integer plan's cost on a CPU, which the report's table shows: 19 hard-swishes refused by XNNPACK."""
    from int8lab.config import DataOptions
    from int8lab.model.convert import convert
    from int8lab.model.source import load_model_source

    source = load_model_source(mobilenet_model)
    opts = DataOptions(preset="tf", quiet=True, num_samples=8)
    content = convert(source, "int8", opts.generator(fashion_dir, opts.spec(source.input), split="val"))
    summary = profile_summary(op_profile(content, latency_sample(LiteRTModel(content)), threads=1))
    hard_swish = next(r for r in summary["top"] if r["kind"] == "HARD_SWISH")
    assert hard_swish["kernel"] == "built-in" and hard_swish["ops"] == 19 and summary["builtin_ms"] > 0
