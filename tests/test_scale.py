"""Ray as the engine (issue 12): the same sweep on a Ray started here and on a Ray head started
beforehand gives the numbers of the run without Ray."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import int8lab

pytest.importorskip("ray")
GRID = ("--calib-sizes", "10", "--repeats", "1", "--strategies", "random", "--preset", "unit", "-q")


def metric_rows(out: Path) -> list[str]:
    """The metrics.md rows, without latency (a timing, not a result)."""
    rows = [line.split(" | ") for line in (out / "metrics.md").read_text().splitlines() if line.startswith("| ")]
    return [" | ".join(cells[:-2]) for cells in rows]  # latency and fully-integer are the last two cells


@pytest.fixture(scope="module")
def without_ray(tmp_path_factory, fashion_model, fashion_dir):
    out = tmp_path_factory.mktemp("plain")
    int8lab("experiment", fashion_model, "--data", fashion_dir, "-o", out, *GRID)
    return metric_rows(out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ray_started_here_gives_the_same_metrics(tmp_path, fashion_model, fashion_dir, without_ray):
    int8lab("experiment", fashion_model, "--data", fashion_dir, "-o", tmp_path, *GRID, "--ray-address", "local")
    assert metric_rows(tmp_path) == without_ray


@pytest.mark.slow
def test_a_ray_head_gives_the_same_metrics(tmp_path, fashion_model, fashion_dir, without_ray, monkeypatch):
    # Every Ray process and the driver stay on the loopback interface (Ray otherwise swaps
    # 127.0.0.1 for the machine's outward address).
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # `ray start` enables token auth; the driver reads its token
    ray = [str(Path(sys.executable).with_name("ray"))]
    port = _free_port()
    subprocess.run([*ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
                   check=True, capture_output=True)
    try:
        int8lab("experiment", fashion_model, "--data", fashion_dir, "-o", tmp_path, *GRID,
                "--ray-address", f"127.0.0.1:{port}")
    finally:
        subprocess.run([*ray, "stop", "--force"], capture_output=True)
    assert metric_rows(tmp_path) == without_ray


@pytest.mark.slow
@pytest.mark.parametrize("model", ["classifier", "detector"])
def test_validate_on_ray_shards_gives_the_one_pass_figures(tmp_path, fashion_model, fashion_dir, model):
    from conftest import ROOT

    if model == "classifier":
        source, data, flags = fashion_model, fashion_dir, ("--preset", "unit")
    else:
        detect = ROOT / "examples" / "detect"
        source, data = detect / "yolo_tiny.onnx", detect / "data"
        flags = ("--preset", "unit", "--resize", "letterbox", "--input-size", "160", "160")
    quantized = tmp_path / "model.tflite"
    int8lab("convert", source, "--data", data, *flags, "-o", quantized, "-q")
    one_pass = json.loads(int8lab("validate", quantized, "--reference", source, "--data", data, *flags,
                                  "-o", tmp_path / "plain", "-q", "--json").stdout)
    sharded = json.loads(int8lab("validate", quantized, "--reference", source, "--data", data, *flags,
                                 "-o", tmp_path / "ray", "-q", "--json", "--ray-address", "local",
                                 "--shards", "3").stdout)
    keys = ("num_images", "top1_agreement", "accuracy_quantized") if model == "classifier" \
        else ("num_images", "map50", "map50_95", "map50_vs_reference", "detections_kept", "mean_box_error_px")
    for key in keys:
        assert sharded[key] == pytest.approx(one_pass[key], rel=1e-12), key
    # Float error sums: the float model's kernels round a little differently at other batch sizes.
    if model == "classifier":
        assert sharded["mean_abs_output_error"] == pytest.approx(one_pass["mean_abs_output_error"], rel=1e-5)
    if model == "classifier":
        assert sharded["quantized"]["confusion_matrix"] == one_pass["quantized"]["confusion_matrix"]


@pytest.mark.slow
def test_a_validation_worker_killed_mid_run_costs_no_result(tmp_path, fashion_model, fashion_dir):
    """A Ray worker's process ended by its id while it scores its shard: Ray runs the shard again
    on a new worker, and the job finishes with the one-pass figures."""
    import os
    import signal
    import time

    quantized = tmp_path / "model.tflite"
    int8lab("convert", fashion_model, "--data", fashion_dir, "--preset", "unit", "-o", quantized, "-q")
    one_pass = json.loads(int8lab("validate", quantized, "--reference", fashion_model, "--data", fashion_dir,
                                  "-o", tmp_path / "plain", "-q", "--json").stdout)
    command = [sys.executable, "-m", "int8lab", "validate", str(quantized), "--reference", str(fashion_model),
               "--data", str(fashion_dir), "-o", str(tmp_path / "ray"), "-q", "--json", "--ray-address", "local",
               "--shards", "4"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    while run.poll() is None and killed is None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::validate_shard"):
                os.kill(int(pid), signal.SIGKILL)
                killed = int(pid)
                break
        time.sleep(0.05)
    stdout, stderr = run.communicate(timeout=600)
    assert killed is not None, "no validation worker was seen running"
    assert run.returncode == 0, stderr
    sharded = json.loads(stdout)  # what Ray says of the dead worker goes to stderr
    for key in ("num_images", "top1_agreement", "accuracy_quantized"):
        assert sharded[key] == pytest.approx(one_pass[key], rel=1e-12), key
    assert sharded["quantized"]["confusion_matrix"] == one_pass["quantized"]["confusion_matrix"]


def test_a_ray_task_decodes_on_the_cpus_it_was_granted():
    """One CPU granted: images decode in line with inference, not on threads that take a CPU
    the task does not hold (the one beside it, or an idle one a lone task borrows)."""
    from int8lab.scale import ray_map, task_cpus

    assert list(ray_map(lambda item, shared: task_cpus(), [0], (), "local")) == [1]
