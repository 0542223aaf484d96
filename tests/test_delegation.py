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
