"""Keep a detector's scores alive in int8: divide its box coordinates by the input size inside
the graph, before they are concatenated with the class scores.

A YOLO head ends in one concatenation of box coordinates in pixels (0-640) with sigmoid scores
(0-1). Full int8 gives that tensor one scale: at 640/255 = 2.5 per step, every score below 1.25
rounds to zero, and the model detects nothing. Ultralytics' own int8 exports normalise the boxes
to [0, 1] before the concatenation; this does the same to any PyTorch module (or ONNX graph
rebuilt as one) by rewriting its exported graph: each input of the final concatenation that
carries box channels is multiplied by 1/width or 1/height per channel. The rest of the model, and
what the output means apart from the box unit, are unchanged; the sidecar records
``"boxes": "normalized"`` so decoding multiplies back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from int8lab.errors import Int8labError

BOX_CHANNELS = 4  # x, y, w, h (or x1, y1, x2, y2): x-like channels are even, y-like odd
VIEW_OPS = ("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default", "aten.clone.default",
            "aten.contiguous.default", "aten.alias.default")


class BoxRewriteError(Int8labError):
    """The graph does not end in a concatenation whose box inputs can be rescaled."""


@dataclass(frozen=True)
class ChannelRanges:
    """Largest magnitude of the float model's box and score channels on calibration images."""

    box_max: float
    score_max: float

    @property
    def ratio(self) -> float:
        return self.box_max / max(self.score_max, 1e-12)


def channel_ranges(outputs: np.ndarray, channel_axis: int) -> ChannelRanges:
    """Ranges of the first four channels (boxes) and the rest (scores) of raw detector outputs."""
    channels = np.moveaxis(np.abs(outputs), channel_axis, -1)
    return ChannelRanges(float(channels[..., :BOX_CHANNELS].max()), float(channels[..., BOX_CHANNELS:].max()))


def normalise_boxes(module, sample, input_size: tuple[int, int], channel_axis: int):
    """A module computing the same as ``module`` with box channels divided by the input size.

    ``channel_axis`` is the output axis holding 4 + classes channels. Raises BoxRewriteError when
    the output is not reached from a concatenation over that axis through view-like ops."""
    import torch

    height, width = input_size
    program = torch.export.export(module, (sample,))
    graph_module = program.module()
    graph = graph_module.graph
    output = next(n for n in graph.nodes if n.op == "output")
    node = _first_arg(output)
    per_channel = np.array([1 / width, 1 / height] * (BOX_CHANNELS // 2), np.float32)
    for c, (node, axis) in enumerate(_channel_concats(node, channel_axis % len(sample_shape(node)))):
        rank = len(sample_shape(node))
        offset, inputs = 0, list(node.args[0])
        for k, part in enumerate(inputs):
            span = int(part.meta["val"].shape[axis])
            if offset < BOX_CHANNELS:
                if offset + span > BOX_CHANNELS:
                    raise BoxRewriteError("one input of the final concatenation mixes box and score channels")
                shape = [1] * rank
                shape[axis] = span
                name = f"_int8lab_box_scale_{c}_{k}"
                graph_module.register_buffer(name, torch.from_numpy(per_channel[offset:offset + span].reshape(shape)))
                with graph.inserting_before(node):
                    scale = graph.get_attr(name)
                    inputs[k] = graph.call_function(torch.ops.aten.mul.Tensor, (part, scale))
            offset += span
        node.args = (inputs, *node.args[1:])
    graph_module.recompile()
    graph_module.training = False  # exported in inference mode; eval() is refused on exported modules
    _check(module, graph_module, sample, per_channel, channel_axis)
    return graph_module


def _channel_concats(node, axis: int) -> list:
    """(concatenation, channel axis) of each concatenation that joins boxes and scores: the last
    one, or, when the last joins anchors (Darknet's and YOLOv3's per-scale heads), each of its
    inputs' own."""
    while not _is(node, "aten.cat.default"):
        node, axis = _through_view(node, axis)
    cat_axis = node.args[1] if len(node.args) > 1 else 0
    if cat_axis % len(sample_shape(node)) == axis:
        return [(node, axis)]
    return [found for part in node.args[0] for found in _channel_concats(part, axis)]


def sample_shape(node) -> tuple:
    return tuple(node.meta["val"].shape)


def _first_arg(output_node):
    value = output_node.args[0]
    while isinstance(value, (tuple, list)):
        value = value[0]
    return value


def _is(node, target: str) -> bool:
    return getattr(node, "op", None) == "call_function" and str(node.target) == target


def _through_view(node, axis: int):
    """Step to the producer of ``node``, following which of its axes holds the channels."""
    if getattr(node, "op", None) != "call_function":
        raise BoxRewriteError("the detector's output is not produced by a concatenation int8lab can rewrite")
    target, source = str(node.target), node.args[0]
    if target == "aten.permute.default":
        return source, node.args[1][axis]
    if target == "aten.transpose.int":
        a, b = (d % len(sample_shape(node)) for d in node.args[1:3])
        return source, b if axis == a else a if axis == b else axis
    if target in VIEW_OPS:
        before, after = sample_shape(source), sample_shape(node)
        if after[axis] == before[axis - len(after) + len(before)] and axis == len(after) - 1:
            return source, len(before) - 1  # the channels stay the innermost axis
        if before == after or before[:axis + 1] == after[:axis + 1]:
            return source, axis  # only axes after the channels are merged or split
    raise BoxRewriteError(f"the detector's output passes through {target}, which int8lab cannot see through")


def _check(original, rewritten, sample, per_channel: np.ndarray, axis: int) -> None:
    """The rewrite changes the box unit and nothing else."""
    import torch

    with torch.no_grad():
        before, after = original(sample), rewritten(sample)
    before = np.moveaxis((before[0] if isinstance(before, (tuple, list)) else before).numpy(), axis, -1)
    after = np.moveaxis((after[0] if isinstance(after, (tuple, list)) else after).numpy(), axis, -1)
    expected = before.copy()
    expected[..., :BOX_CHANNELS] *= per_channel
    if not np.allclose(after, expected, rtol=1e-4, atol=1e-5):
        raise BoxRewriteError("the rewritten model does not reproduce the original's outputs")
