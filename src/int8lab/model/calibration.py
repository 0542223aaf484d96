"""One pass of the float model over the calibration images, for everything quantization measures.

ai-edge-quantizer's own calibration runs the model with every tensor kept and then walks its ops
in Python, copying every tensor of every image; bias correction then ran the model again for the
layer inputs' means, and the detector-head search a third time for the float outputs. Here one
pass gathers all three: each activation's min/max merged exactly as ai-edge-quantizer merges
them (per image, then its moving average, so its ``quantize`` takes the result unchanged), the
per-channel means of the tensors asked for (over the images asked for), and the float outputs
(the reference every later measurement compares with). On YOLO-World at 640 px this is one
pass where there were three.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from int8lab.progress import steps


@dataclass
class CalibrationPass:
    """What one pass of the float model measured."""

    qsvs: dict[str, dict]  # tensor name -> {"min", "max"}: ai-edge-quantizer's calibration result
    means: dict[str, np.ndarray]  # tensor name -> per-channel (last axis) mean over the images asked
    outputs: np.ndarray  # the float model's outputs, one row per image (joined as LiteRTModel.predict)


def calibrate(content: bytes, images: list[np.ndarray], mean_of: frozenset[str] = frozenset(),
              mean_images: frozenset[int] | None = None) -> CalibrationPass:
    """Run the float ``content`` on each ``images`` entry (a batch of one) with every tensor kept.
    ``mean_of`` names tensors whose per-channel mean is wanted, over the images whose positions
    are in ``mean_images`` (all by default)."""
    from ai_edge_quantizer.utils.tfl_interpreter_utils import create_tfl_interpreter

    from int8lab.runtime import LiteRTModel

    # ai-edge-quantizer's own interpreter (XNNPACK, every tensor kept): twice as fast as without
    # the delegate on YOLO-World, and the values its calibration reads.
    interpreter = create_tfl_interpreter(content, num_threads=os.cpu_count() or 1)
    runtime = LiteRTModel.wrapping(interpreter)
    activations = _activation_tensors(content)
    details = [d for d in interpreter.get_tensor_details() if d["name"] in activations and np.all(d["shape"])]
    qsvs: dict[str, dict] = {}
    sums: dict[str, np.ndarray] = {}
    counted, outputs = 0, []
    for k, image in enumerate(steps(images, len(images), f"calibration ({len(images)} images)")):
        outputs.append(runtime.predict(image))
        take_mean = mean_images is None or k in mean_images
        for detail in details:
            _measure(interpreter, detail, qsvs, sums if take_mean and detail["name"] in mean_of else None)
        counted += take_mean
    means = {name: total / counted for name, total in sums.items()} if counted else {}
    return CalibrationPass(qsvs, means, np.concatenate(outputs))


def _measure(interpreter, detail: dict, qsvs: dict, sums: dict | None) -> None:
    """Merge one tensor's min/max into ``qsvs`` (and its channel means into ``sums``), reading it
    in place: the view is gone when this returns, before the interpreter runs again."""
    from ai_edge_quantizer.algorithms.uniform_quantize.common_quantize import get_activation_min_max
    from ai_edge_quantizer.utils.qsv_utils import moving_average_update

    values = interpreter.tensor(detail["index"])()
    stats = get_activation_min_max(values, valid_float_range_min=-3e38, valid_float_range_max=3e38)
    name = detail["name"]
    qsvs[name] = moving_average_update(qsvs[name], stats) if name in qsvs else stats
    if sums is not None:
        sums[name] = sums.get(name, 0.0) + values.reshape(-1, values.shape[-1]).astype(np.float64).mean(0)


def _activation_tensors(content: bytes) -> set[str]:
    """Names of the tensors ops read or write that hold no constant: what calibration measures."""
    from int8lab.model.ranges import _graph

    tfl, model, graph = _graph(content)
    used = {t for op in graph.operators for t in (*op.inputs, *op.outputs) if t >= 0}
    used |= set(graph.inputs) | set(graph.outputs)
    return {tfl.get_tensor_name(graph.tensors[t]) for t in used
            if tfl.get_tensor_data(graph.tensors[t], model.buffers) is None}
