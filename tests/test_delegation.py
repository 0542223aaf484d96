"""Which ops LiteRT's XNNPACK delegate takes, read off the interpreter itself."""

from __future__ import annotations

import json

from conftest import int8lab

from int8lab.runtime import delegation


def test_int8_softmax_is_the_op_xnnpack_leaves_to_the_builtin_kernels(fashion_int8):
    """The example classifier's int8 SOFTMAX has no XNNPACK kernel; the rest is one partition."""
    runs = delegation(fashion_int8.path.read_bytes())
    assert runs.partitions == 1 and runs.delegated > 3
    assert [entry.split(" ", 1)[0] for entry in runs.fallback] == ["SOFTMAX"]
    assert "SOFTMAX x1" in runs.describe()


def test_inspect_and_bench_show_it(fashion_int8):
    found = json.loads(int8lab("inspect", fashion_int8.path, "--json").stdout)
    assert found["delegation"]["partitions"] == 1
    assert "XNNPACK runs" in int8lab("inspect", fashion_int8.path).stdout
    rows = json.loads(int8lab("bench", fashion_int8.path, "--runs", "3", "--warmup", "1", "--json").stdout)
    assert rows[0]["delegation"]["fallback"]


def test_the_slower_int8_warning_names_the_cause_and_the_float_io_way_out():
    from int8lab.cpu import cpu_info
    from int8lab.pipeline import slower_int8
    from int8lab.runtime import Delegation

    latency = {"fp32": {"mean_ms": 0.089}, "int8": {"mean_ms": 0.165}}
    hard_swish = Delegation(21, 91, ("HARD_SWISH (a)", "SOFTMAX (b)"))
    [warning] = slower_int8(latency, cpu_info(), hard_swish, "integer")
    assert "HARD_SWISH x1" in warning and "--target cpu" in warning
    assert slower_int8({"fp32": {"mean_ms": 1.0}, "int8": {"mean_ms": 0.5}}, cpu_info(), hard_swish) == []
