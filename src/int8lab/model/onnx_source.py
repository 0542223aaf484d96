"""ONNX models in: the graph is rebuilt as a PyTorch module, then takes the PyTorch path.

onnx2torch would do this, but it requires torchvision, which does not install beside the CPU
build of torch this project pins; onnx2tf pins an older TensorFlow and numpy. So int8lab runs
the ONNX graph with torch operations for the operator set of image classifiers and YOLO
detectors (end-to-end heads' TopK / GatherElements selection included), and names every
operator it does not support before converting anything. ONNX Runtime, when installed, is the
float reference for validation.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from int8lab.errors import UsageError
from int8lab.model.torch_source import TorchSource, import_torch


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(pads: list[int]) -> tuple[int, ...]:
    """ONNX (top, left, bottom, right) -> symmetric torch padding, or None if asymmetric."""
    half = len(pads) // 2
    begin, end = pads[:half], pads[half:]
    return tuple(begin) if begin == end else None


def _torch_pads(pads: list[int]) -> list[int]:
    """ONNX (begin of each axis..., end of each axis...) -> torch's F.pad order (last axis first)."""
    half = len(pads) // 2
    return [p for k in reversed(range(half)) for p in (pads[k], pads[k + half])]


def _op_table():
    """op_type -> fn(module, inputs, attrs) -> output tensor (or tuple)."""
    torch = import_torch()
    F = torch.nn.functional
    CAST_TYPES = _cast_types()

    def conv(m, x, a):
        weight, bias = x[1], (x[2] if len(x) > 2 else None)
        pads = a.get("pads", [0] * (2 * (weight.dim() - 2)))
        symmetric = _pads(pads)
        data = x[0]
        if symmetric is None:  # e.g. TF-style "same" padding exported as explicit pads
            data, symmetric = F.pad(data, _torch_pads(pads)), 0
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise UsageError("Conv with auto_pad SAME is not supported; export with explicit pads")
        return F.conv2d(data, weight, bias, tuple(a.get("strides", [1, 1])), symmetric,
                        tuple(a.get("dilations", [1, 1])), a.get("group", 1))

    def pool(kind):
        def run(m, x, a):
            kernel, strides = tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"]))
            pads = a.get("pads", [0] * 4)
            padding = _pads(pads)
            ceil = bool(a.get("ceil_mode", 0))
            include_pad = bool(a.get("count_include_pad", 0))
            if padding is None:  # TF-style "same" pooling, exported as explicit uneven pads
                return uneven_pool(x[0], kind, kernel, strides, pads, ceil, include_pad)
            if kind == "MaxPool":
                return F.max_pool2d(x[0], kernel, strides, padding, ceil_mode=ceil)
            return F.avg_pool2d(x[0], kernel, strides, padding, ceil_mode=ceil, count_include_pad=include_pad)
        return run

    def uneven_pool(data, kind, kernel, strides, pads, ceil, include_pad):
        """Pad first, then pool unpadded. A max pool pads with copies of the edge (always inside
        the window, so exact, and no -inf for int8 calibration to meet); an average pool that
        leaves padding out of the count is rescaled by a constant window-size map."""
        if kind == "MaxPool":
            return F.max_pool2d(edge_pad(data, pads), kernel, strides, 0, ceil_mode=ceil)
        pooled = F.avg_pool2d(F.pad(data, _torch_pads(pads)), kernel, strides, 0, ceil_mode=ceil)
        if include_pad:
            return pooled
        inside = F.avg_pool2d(F.pad(torch.ones((1, 1, *data.shape[2:])), _torch_pads(pads)), kernel, strides, 0,
                              ceil_mode=ceil)
        return pooled * (1.0 / inside)

    def edge_pad(data, pads):
        top, left, bottom, right = pads
        rows = [data[:, :, :1]] * top + [data] + [data[:, :, -1:]] * bottom
        data = torch.cat(rows, 2) if top or bottom else data
        columns = [data[..., :1]] * left + [data] + [data[..., -1:]] * right
        return torch.cat(columns, 3) if left or right else data

    def axes_of(m, x, a, position=1):
        if len(x) > position and x[position] is not None:
            return [int(v) for v in m.static(x[position])]
        return a.get("axes")

    def reduce_mean(m, x, a):
        axes = axes_of(m, x, a)
        keep = bool(a.get("keepdims", 1))
        return x[0].mean(dim=axes, keepdim=keep) if axes else x[0].mean()

    def reshape(m, x, a):
        shape = [int(v) for v in m.static(x[1])]
        if not a.get("allowzero", 0):
            shape = [x[0].shape[k] if v == 0 else v for k, v in enumerate(shape)]
        return x[0].reshape(shape)

    def gemm(m, x, a):
        left = x[0].t() if a.get("transA", 0) else x[0]
        right = x[1].t() if a.get("transB", 0) else x[1]
        out = a.get("alpha", 1.0) * (left @ right)
        return out + a.get("beta", 1.0) * x[2] if len(x) > 2 and x[2] is not None else out

    def clip(m, x, a):
        low = m.static(x[1]).item() if len(x) > 1 and x[1] is not None else a.get("min")
        high = m.static(x[2]).item() if len(x) > 2 and x[2] is not None else a.get("max")
        return torch.clamp(x[0], low, high)

    def batch_norm(m, x, a):
        return F.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.0, a.get("epsilon", 1e-5))

    def pad(m, x, a):
        pads = [int(v) for v in m.static(x[1])]
        if a.get("mode", b"constant") not in (b"constant", "constant"):
            raise UsageError("Pad modes other than constant are not supported")
        value = float(m.static(x[2]).item()) if len(x) > 2 and x[2] is not None else 0.0
        return F.pad(x[0], _torch_pads(pads), value=value)

    def split(m, x, a):
        axis = a.get("axis", 0)
        if len(x) > 1 and x[1] is not None:
            sizes = [int(v) for v in m.static(x[1])]
        elif "split" in a:
            sizes = list(a["split"])
        else:
            parts = a.get("num_outputs") or m.outputs_of_current
            sizes = [-(-x[0].shape[axis] // parts)] * parts
            sizes[-1] = x[0].shape[axis] - sum(sizes[:-1])
        return tuple(torch.split(x[0], sizes, dim=axis))

    def slice_(m, x, a):
        starts, ends = (m.static(v).tolist() for v in x[1:3])
        axes = m.static(x[3]).tolist() if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = m.static(x[4]).tolist() if len(x) > 4 and x[4] is not None else [1] * len(starts)
        index = [slice(None)] * x[0].dim()
        for start, end, axis, step in zip(starts, ends, axes, steps):
            if step <= 0:
                raise UsageError("Slice with a negative step is not supported")
            size = x[0].shape[axis]
            index[axis] = slice(max(-size, min(start, size)), max(-size, min(end, size)), step)
        return x[0][tuple(index)]

    def resize(m, x, a):
        mode = _text(a.get("mode", "nearest"))
        transform = _text(a.get("coordinate_transformation_mode", "half_pixel"))
        sizes = m.static(x[3]).tolist() if len(x) > 3 and x[3] is not None else None
        scales = m.static(x[2]).tolist() if len(x) > 2 and x[2] is not None and m.static(x[2]).size else None
        size = tuple(int(v) for v in sizes[2:]) if sizes else None
        factor = None if size else tuple(float(v) for v in scales[2:])
        if mode == "nearest":
            size = size or tuple(int(n * f) for n, f in zip(x[0].shape[2:], factor))
            return nearest(x[0], size, factor, transform, _text(a.get("nearest_mode", "round_prefer_floor")))
        if mode == "linear" and transform == "asymmetric":
            return asymmetric_linear(x[0], size or tuple(int(n * f) for n, f in zip(x[0].shape[2:], factor)))
        if mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            return F.interpolate(x[0], size=size, scale_factor=factor, mode="bilinear",
                                 align_corners=transform == "align_corners")
        raise UsageError(f"Resize with mode {mode} and coordinate_transformation_mode {transform} is not "
                         f"supported (nearest with any coordinates, linear with half_pixel/align_corners/asymmetric "
                         f"are)")

    def nearest(data, size, factor, transform, rounding):
        """Nearest Resize as ONNX defines it for each coordinate transform and rounding. Where the
        source rows are those of a whole-number upsampling (half_pixel at any whole scale: what
        tf2onnx and Darknet converters write), one torch nearest interpolate, which becomes TFLite's
        RESIZE_NEAREST_NEIGHBOR; otherwise a gather of the rows and columns ONNX picks."""
        picks = [_nearest_sources(n, out, f, transform, rounding)
                 for n, out, f in zip(data.shape[2:], size, factor or (None,) * len(size))]
        if all(out % n == 0 and np.array_equal(pick, np.arange(out) // (out // n))
               for pick, n, out in zip(picks, data.shape[2:], size)):
            return F.interpolate(data, size=tuple(size), mode="nearest")
        for axis, pick in zip((2, 3), picks):
            if not np.array_equal(pick, np.arange(data.shape[axis])):
                data = torch.index_select(data, axis, torch.from_numpy(pick))
        return data

    def pow_(m, x, a):
        """YOLOv5's (2 sigmoid)^2 anchor scaling: a constant exponent, 2 as a product."""
        exponent = m.static(x[1]) if isinstance(x[1], np.ndarray) else None
        if exponent is None or exponent.size != 1:
            return torch.pow(x[0], x[1])
        value = float(exponent.reshape(-1)[0])
        return x[0] * x[0] if value == 2.0 else torch.pow(x[0], value)

    def tensor(value):
        return torch.from_numpy(np.array(value)) if isinstance(value, np.ndarray) else value

    def integer(value) -> bool:
        return np.asarray(value).dtype.kind in "iub" if isinstance(value, np.ndarray) else not value.is_floating_point()

    def div(m, x, a):
        if integer(x[0]) and integer(x[1]):  # ONNX integer Div truncates (an end-to-end head's index // classes)
            return torch.div(tensor(x[0]), tensor(x[1]), rounding_mode="trunc")
        return x[0] / x[1]

    def mod(m, x, a):
        return (torch.fmod if a.get("fmod", 0) else torch.remainder)(tensor(x[0]), tensor(x[1]))

    def cast(m, x, a):
        """To the graph's own types; float16 and float64 become float32 (int8lab rebuilds in float32)."""
        if a["to"] not in CAST_TYPES:
            raise UsageError(f"Cast to ONNX type {a['to']} is not supported (floats, integers and bool are)")
        torch_type, numpy_type = CAST_TYPES[a["to"]]
        return x[0].astype(numpy_type) if isinstance(x[0], np.ndarray) else x[0].to(torch_type)

    def gather(m, x, a):
        axis = a.get("axis", 0)
        if isinstance(x[0], np.ndarray) and isinstance(x[1], np.ndarray):
            return np.take(x[0], x[1], axis=axis)
        indices = x[1] if torch.is_tensor(x[1]) else torch.from_numpy(np.asarray(x[1]).astype(np.int64))
        picked = torch.index_select(tensor(x[0]), axis, indices.reshape(-1).long())
        return picked.reshape(*x[0].shape[:axis], *indices.shape, *x[0].shape[axis + 1:])

    def topk(m, x, a):
        k = int(m.static(x[1]).reshape(-1)[0])
        return tuple(torch.topk(x[0], k, dim=a.get("axis", -1), largest=bool(a.get("largest", 1)),
                                sorted=bool(a.get("sorted", 1))))

    def reduce(fn):
        def run(m, x, a):
            axes = axes_of(m, x, a)
            keep = bool(a.get("keepdims", 1))
            return fn(x[0], dim=axes, keepdim=keep) if axes else fn(x[0], dim=tuple(range(x[0].dim())), keepdim=keep)
        return run

    def arg(fn):
        def run(m, x, a):
            if a.get("select_last_index", 0):
                raise UsageError("ArgMax/ArgMin with select_last_index is not supported")
            return fn(x[0], dim=a.get("axis", 0), keepdim=bool(a.get("keepdims", 1)))
        return run

    def tile(m, x, a):
        repeats = [int(v) for v in m.static(x[1])]
        return np.tile(x[0], repeats) if isinstance(x[0], np.ndarray) else x[0].repeat(*repeats)

    def expand(m, x, a):
        shape = [int(v) for v in m.static(x[1])]
        data = tensor(x[0])
        return data * torch.ones(shape, dtype=data.dtype)  # ONNX Expand broadcasts both ways

    def layer_norm(m, x, a):
        axis = a.get("axis", -1) % x[0].dim()
        shape = tuple(x[0].shape[axis:])
        bias = x[2] if len(x) > 2 and x[2] is not None else None
        return F.layer_norm(x[0], shape, x[1].reshape(shape), None if bias is None else bias.reshape(shape),
                            a.get("epsilon", 1e-5))

    def conv_transpose(m, x, a):
        """A learned upsampling (YOLOv6's neck, segmentation heads): uneven pads are cropped after."""
        weight, bias = x[1], (x[2] if len(x) > 2 else None)
        if "output_shape" in a or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise UsageError("ConvTranspose with output_shape or auto_pad is not supported; export with explicit pads")
        pads = a.get("pads", [0] * 4)
        symmetric = _pads(pads)
        out = F.conv_transpose2d(x[0], weight, bias, tuple(a.get("strides", [1, 1])),
                                 0 if symmetric is None else symmetric, tuple(a.get("output_padding", [0, 0])),
                                 a.get("group", 1), tuple(a.get("dilations", [1, 1])))
        if symmetric is None:
            top, left, bottom, right = pads
            out = out[:, :, top:out.shape[2] - bottom, left:out.shape[3] - right]
        return out

    def depth_to_space(m, x, a):
        n, c, h, w = x[0].shape
        b = a["blocksize"]
        if _text(a.get("mode", "DCR")) == "CRD":
            return F.pixel_shuffle(x[0], b)
        return x[0].reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)

    def space_to_depth(m, x, a):
        n, c, h, w = x[0].shape
        b = a["blocksize"]
        return x[0].reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)

    def upsample(m, x, a):
        """Opset 7-9 Upsample (Darknet YOLOv3/v4 exports): nearest or linear by constant scales."""
        scales = m.static(x[1]).tolist() if len(x) > 1 else a["scales"]
        mode = _text(a.get("mode", "nearest"))
        if mode not in ("nearest", "linear", "bilinear"):
            raise UsageError(f"Upsample with mode {mode} is not supported (nearest and linear are)")
        factor = tuple(float(v) for v in scales[2:])
        if mode == "nearest":
            return F.interpolate(x[0], scale_factor=factor, mode="nearest")
        return asymmetric_linear(x[0], tuple(int(n * f) for n, f in zip(x[0].shape[2:], factor)))

    def asymmetric_linear(data, size):
        """Bilinear resize with ONNX's asymmetric coordinates (source = destination / scale, edge
        clamped), which torch's interpolate has no mode for: gathers along each axis."""
        for axis, out in zip((2, 3), size):
            n = data.shape[axis]
            where = torch.arange(out, dtype=torch.float32) * (n / out)
            low = where.floor().clamp(max=n - 1)
            weight = (where - low).reshape([-1 if k == axis else 1 for k in range(data.dim())])
            low = low.long()
            high = (low + 1).clamp(max=n - 1)
            data = torch.index_select(data, axis, low) * (1 - weight) + torch.index_select(data, axis, high) * weight
        return data

    def reduce_sum(m, x, a):
        axes = axes_of(m, x, a)
        if not axes and a.get("noop_with_empty_axes", 0):
            return x[0]
        keep = bool(a.get("keepdims", 1))
        return x[0].sum(dim=axes, keepdim=keep) if axes else x[0].sum(dim=tuple(range(x[0].dim())), keepdim=keep)

    def unary(fn):
        return lambda m, x, a: fn(tensor(x[0]))

    def binary(fn):
        return lambda m, x, a: fn(tensor(x[0]), tensor(x[1]))

    return {
        "TopK": topk,
        "GatherElements": lambda m, x, a: torch.gather(tensor(x[0]), a.get("axis", 0), tensor(x[1]).long()),
        "Tile": tile,
        "Expand": expand,
        "Mod": mod,
        "ReduceMax": reduce(torch.amax),
        "ReduceMin": reduce(torch.amin),
        "ArgMax": arg(torch.argmax),
        "ArgMin": arg(torch.argmin),
        "Max": lambda m, x, a: torch.stack(torch.broadcast_tensors(*map(tensor, x))).amax(0),
        "Min": lambda m, x, a: torch.stack(torch.broadcast_tensors(*map(tensor, x))).amin(0),
        "Equal": lambda m, x, a: torch.eq(tensor(x[0]), tensor(x[1])),
        "Greater": lambda m, x, a: torch.gt(tensor(x[0]), tensor(x[1])),
        "Less": lambda m, x, a: torch.lt(tensor(x[0]), tensor(x[1])),
        "Not": lambda m, x, a: torch.logical_not(tensor(x[0])),
        "Exp": unary(torch.exp),
        "Log": unary(torch.log),
        "Sqrt": unary(torch.sqrt),
        "Reciprocal": unary(torch.reciprocal),
        "Neg": unary(torch.neg),
        "Abs": unary(torch.abs),
        "Erf": unary(torch.erf),
        "Floor": unary(torch.floor),
        "Ceil": unary(torch.ceil),
        "Round": unary(torch.round),
        "Sign": unary(torch.sign),
        "Gelu": lambda m, x, a: F.gelu(x[0], approximate=_text(a.get("approximate", "none"))),
        "Softplus": lambda m, x, a: F.softplus(x[0]),
        "Mish": lambda m, x, a: F.mish(x[0]),
        "Elu": lambda m, x, a: F.elu(x[0], a.get("alpha", 1.0)),
        "Selu": lambda m, x, a: a.get("gamma", 1.0507009873554805) * torch.where(
            x[0] > 0, x[0], a.get("alpha", 1.6732632423543772) * (torch.exp(x[0]) - 1)),
        "PRelu": lambda m, x, a: torch.where(x[0] >= 0, x[0], x[0] * tensor(x[1])),
        "LayerNormalization": layer_norm,
        "InstanceNormalization": lambda m, x, a: F.instance_norm(x[0], weight=x[1], bias=x[2],
                                                                  eps=a.get("epsilon", 1e-5)),
        "ConvTranspose": conv_transpose,
        "DepthToSpace": depth_to_space,
        "SpaceToDepth": space_to_depth,
        "Upsample": upsample,
        "Einsum": lambda m, x, a: torch.einsum(_text(a["equation"]), *map(tensor, x)),
        "Sum": lambda m, x, a: sum(map(tensor, x[1:]), tensor(x[0])),
        "Mean": lambda m, x, a: sum(map(tensor, x[1:]), tensor(x[0])) / len(x),
        "ReduceSum": reduce_sum,
        "ReduceL2": lambda m, x, a: torch.sqrt(reduce_sum(m, [x[0] * x[0], *x[1:]], a)),
        "GreaterOrEqual": binary(torch.ge),
        "LessOrEqual": binary(torch.le),
        "And": binary(torch.logical_and),
        "Or": binary(torch.logical_or),
        "Xor": binary(torch.ne),  # on booleans; litert-torch has no logical_xor
        "Where": lambda m, x, a: torch.where(tensor(x[0]), tensor(x[1]), tensor(x[2])),
        "Split": split,
        "Slice": slice_,
        "Resize": resize,
        "Gather": gather,
        "Cast": cast,
        "Conv": conv,
        "Relu": lambda m, x, a: torch.relu(x[0]),
        "LeakyRelu": lambda m, x, a: F.leaky_relu(x[0], a.get("alpha", 0.01)),
        "Sigmoid": lambda m, x, a: torch.sigmoid(x[0]),
        "Tanh": lambda m, x, a: torch.tanh(x[0]),
        "HardSigmoid": lambda m, x, a: torch.clamp(a.get("alpha", 0.2) * x[0] + a.get("beta", 0.5), 0, 1),
        "HardSwish": lambda m, x, a: F.hardswish(x[0]),
        "Clip": clip,
        "Softmax": lambda m, x, a: torch.softmax(x[0], dim=a.get("axis", -1)),
        "LogSoftmax": lambda m, x, a: torch.log_softmax(x[0], dim=a.get("axis", -1)),
        "Pow": pow_,
        "Add": lambda m, x, a: x[0] + x[1],
        "Sub": lambda m, x, a: x[0] - x[1],
        "Mul": lambda m, x, a: x[0] * x[1],
        "Div": div,
        "BatchNormalization": batch_norm,
        "MaxPool": pool("MaxPool"),
        "AveragePool": pool("AveragePool"),
        "GlobalAveragePool": lambda m, x, a: x[0].mean(dim=(2, 3), keepdim=True),
        "GlobalMaxPool": lambda m, x, a: torch.amax(x[0], dim=(2, 3), keepdim=True),
        "ReduceMean": reduce_mean,
        "Flatten": lambda m, x, a: x[0].reshape(int(np.prod(x[0].shape[:a.get("axis", 1)])), -1),  # always 2-D
        "Reshape": reshape,
        "Squeeze": lambda m, x, a: x[0].squeeze(tuple(axes_of(m, x, a))) if axes_of(m, x, a) else x[0].squeeze(),
        "Unsqueeze": lambda m, x, a: _unsqueeze(x[0], axes_of(m, x, a)),
        "Transpose": lambda m, x, a: x[0].permute(*a["perm"]),
        "Concat": lambda m, x, a: torch.cat(list(x), dim=a["axis"]),
        "Gemm": gemm,
        "MatMul": lambda m, x, a: x[0] @ x[1],
        "Pad": pad,
        "Identity": lambda m, x, a: x[0],
        "Dropout": lambda m, x, a: x[0],
    }


def _nearest_sources(n: int, out: int, scale: float | None, transform: str, rounding: str) -> np.ndarray:
    """The source index of each output row of ONNX's nearest Resize (its coordinate transform, then
    its nearest_mode), clamped to the input."""
    scale = scale or out / n
    d = np.arange(out, dtype=np.float64)
    if transform in ("half_pixel", "tf_half_pixel_for_nn") or (transform == "pytorch_half_pixel" and out > 1):
        where = (d + 0.5) / scale - (0.5 if transform != "tf_half_pixel_for_nn" else 0.0)
    elif transform == "pytorch_half_pixel":
        where = np.zeros(out)
    elif transform == "align_corners":
        where = d * (n - 1) / (out - 1) if out > 1 else np.zeros(out)
    elif transform == "asymmetric":
        where = d / scale
    else:
        raise UsageError(f"Resize with coordinate_transformation_mode {transform} is not supported")
    rounders = {"floor": np.floor, "ceil": np.ceil,
                "round_prefer_floor": lambda v: np.where(v - np.floor(v) == 0.5, np.floor(v), np.round(v)),
                "round_prefer_ceil": lambda v: np.floor(v + 0.5)}
    if rounding not in rounders:
        raise UsageError(f"Resize with nearest_mode {rounding} is not supported")
    return np.clip(rounders[rounding](where), 0, n - 1).astype(np.int64)


def _cast_types() -> dict:
    """ONNX TensorProto type -> (torch dtype, numpy dtype) of what Cast gives."""
    torch = import_torch()
    return {1: (torch.float32, np.float32), 10: (torch.float32, np.float32), 11: (torch.float32, np.float32),
            2: (torch.uint8, np.uint8), 3: (torch.int8, np.int8), 5: (torch.int16, np.int16),
            6: (torch.int32, np.int32), 7: (torch.int64, np.int64), 9: (torch.bool, np.bool_)}


# Inputs read as numbers while the graph is built (sizes, scales, bounds): a float constant there is
# taken as numpy, which torch.export can trace through, rather than as a tensor buffer.
STATIC_INPUTS = {"Resize": (1, 2, 3), "Clip": (1, 2), "Pad": (1, 2), "Slice": (1, 2, 3, 4),
                 "Split": (1,), "Reshape": (1,), "Gather": (1,), "ReduceMean": (1,),
                 "Squeeze": (1,), "Unsqueeze": (1,), "Pow": (1,), "TopK": (1,), "Tile": (1,), "Expand": (1,),
                 "ReduceMax": (1,), "ReduceMin": (1,), "ReduceSum": (1,), "ReduceL2": (1,), "Upsample": (1,)}


NODE_KEY = re.compile(r"OnnxNode_(n\d+_[0-9A-Za-z_]*)")  # the child key in a litert-torch tensor name


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unsqueeze(tensor, axes):
    for axis in sorted(axes):
        tensor = tensor.unsqueeze(axis)
    return tensor


def build_module(model):
    """The ONNX graph as a torch.nn.Module; refuses (naming them) operators it cannot run."""
    torch = import_torch()
    table = _op_table()
    graph = model.graph
    unsupported = sorted({n.op_type for n in graph.node if n.op_type not in table and n.op_type != "Constant"})
    if unsupported:
        raise UsageError(f"the ONNX model uses operators int8lab cannot convert: {', '.join(unsupported)} "
                         f"(supported: {', '.join(sorted(table))}, Constant)")

    from onnx import numpy_helper

    class OnnxNode(torch.nn.Module):
        """One ONNX node's computation: its own module only for the name litert-torch gives the
        tensors it writes ("…OnnxNode_<key>;k", see ``onnx_node_of``)."""

        def __init__(self, owner, run, attrs):
            super().__init__()
            self.__dict__["owner"] = owner  # the graph module, not registered as a child (no cycle)
            self.run, self.attrs = run, attrs

        def forward(self, args):
            return self.run(self.owner, args, self.attrs)

    class OnnxModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.constants: dict[str, np.ndarray] = {}  # integer tensors: shapes, axes (static)
            self.float_constants: dict[str, np.ndarray] = {}  # also kept as numpy for STATIC_INPUTS
            self.names: dict[str, str] = {}
            for k, init in enumerate(graph.initializer):
                self._add_constant(init.name, numpy_helper.to_array(init), k)
            self.nodes = []
            for node in graph.node:
                attrs = _attrs(node)
                if node.op_type == "Constant":
                    self._add_constant(node.output[0], numpy_helper.to_array(attrs["value"]), len(self.names) + 1000)
                    continue
                self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))
            named = {node.output[0]: (node.name or node.output[0], node.op_type) for node in graph.node}
            self.nodes = fuse_gelu(self.nodes, self.float_constants)
            # One child module per node, so that litert-torch names each tensor after its node.
            self.onnx_nodes = {}  # child key -> (ONNX node name, op type)
            children = {}
            for k, (op_type, _, outputs, attrs) in enumerate(self.nodes):
                key = f"n{k}_{re.sub(r'[^0-9A-Za-z_]', '_', named.get(outputs[0], (outputs[0],))[0])}"
                self.onnx_nodes[key] = (named.get(outputs[0], (outputs[0], op_type))[0], op_type)
                children[key] = OnnxNode(self, table[op_type], attrs)
            self.calls = torch.nn.ModuleDict(children)
            initialisers = {i.name for i in graph.initializer}
            self.input_name = next(i.name for i in graph.input if i.name not in initialisers)
            self.output_name = graph.output[0].name

        def _add_constant(self, name, array, k):
            if array.dtype.kind in "iub":
                self.constants[name] = array
            else:
                self.float_constants[name] = array
                self.names[name] = f"c{k}"
                self.register_buffer(f"c{k}", torch.from_numpy(np.array(array, np.float32)))

        def static(self, value):
            return value if isinstance(value, np.ndarray) else value.detach().numpy()

        def forward(self, x):
            values = {self.input_name: x}

            def get(name):
                if not name:
                    return None
                if name in values:
                    return values[name]
                if name in self.constants:
                    return self.constants[name]
                return getattr(self, self.names[name])

            for (op_type, inputs, outputs, _), call in zip(self.nodes, self.calls.values()):
                self.outputs_of_current = len(outputs)
                static = STATIC_INPUTS.get(op_type, ())
                args = [self.float_constants[n] if k in static and n in self.float_constants else get(n)
                        for k, n in enumerate(inputs)]
                result = call(args)
                if isinstance(result, tuple):
                    values.update(zip(outputs, result))
                else:
                    values[outputs[0]] = result
            return values[self.output_name]

    return OnnxModule().eval()


def fuse_gelu(nodes: list, constants: dict) -> list:
    """Exact GELU as exporters write it, x * 0.5 * (1 + erf(x / sqrt 2)) with the products in
    any order, as one Gelu node: litert-torch lowers a lone erf to a polynomial behind a MINIMUM
    clamp, which ai-edge-quantizer leaves in float, and GELU to the builtin it quantizes."""
    def scalar(name):
        value = constants.get(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def near(name, target):
        value = scalar(name)
        return value is not None and abs(value - target) < 1e-4 * abs(target)

    def other(node, name):
        rest = [i for i in node[1] if i != name]
        return rest[0] if len(rest) == 1 else None

    producer = {out: k for k, node in enumerate(nodes) for out in node[2]}
    readers = {}
    for k, node in enumerate(nodes):
        for name in node[1]:
            readers.setdefault(name, []).append(k)
    only = lambda name: readers.get(name, []) if len(readers.get(name, [])) == 1 else []  # noqa: E731
    replaced, dropped = {}, set()
    for k, (op, inputs, outputs, _) in enumerate(nodes):
        if op != "Erf" or inputs[0] not in producer:
            continue
        scale_k = producer[inputs[0]]
        scale = nodes[scale_k]
        x = scale[1][0] if scale[0] == "Div" and near(scale[1][1], 2 ** 0.5) else \
            other(scale, next((i for i in scale[1] if near(i, 2 ** -0.5)), "")) if scale[0] == "Mul" else None
        plus = [j for j in only(outputs[0]) if nodes[j][0] == "Add" and near(other(nodes[j], outputs[0]) or "", 1.0)]
        if x is None or not plus or len(readers.get(inputs[0], [])) != 1:
            continue
        chain, value = [scale_k, k, plus[0]], nodes[plus[0]][2][0]
        factors = {"x": False, "half": False}
        while not all(factors.values()):
            step = [j for j in only(value) if nodes[j][0] == "Mul"]
            if not step:
                break
            operand = other(nodes[step[0]], value)
            half_of_x = operand in producer and nodes[producer[operand]][0] == "Mul" and not factors["half"] \
                and not factors["x"] and x in nodes[producer[operand]][1] \
                and near(other(nodes[producer[operand]], x) or "", 0.5)
            if operand == x and not factors["x"]:
                factors["x"] = True
            elif near(operand or "", 0.5) and not factors["half"]:
                factors["half"] = True
            elif half_of_x and len(readers.get(operand, [])) == 1:
                factors = {"x": True, "half": True}
                chain.append(producer[operand])
            else:
                break
            chain.append(step[0])
            value = nodes[step[0]][2][0]
        if all(factors.values()):
            replaced[chain[-1]] = ("Gelu", [x], [value], {})
            dropped.update(chain[:-1])
    return [replaced.get(k, node) for k, node in enumerate(nodes) if k not in dropped]


SHAPE_OPS = ("Shape", "ConstantOfShape", "Range", "Expand", "Size", "NonZero")


def _has_shape_ops(model) -> bool:
    return any(node.op_type in SHAPE_OPS for node in model.graph.node)


def fold_shapes(model, input_name: str, shape: tuple[int, ...]):
    """Fix the input shape and fold every subgraph that only computes shapes (Shape, Gather,
    Range, Expand, ... over the feature-map sizes) into constants, with onnxslim."""
    try:
        import onnxslim
    except ImportError:
        raise UsageError("ONNX models with dynamic axes need onnxslim (in the torch extra: "
                         "pip install 'int8lab[torch]')") from None
    import logging

    logging.getLogger("onnxslim").setLevel(logging.ERROR)
    try:
        return onnxslim.slim(model, input_shapes=[f"{input_name}:{','.join(map(str, shape))}"])
    except Exception as exc:  # onnxslim raises whatever its passes raise
        raise UsageError(f"could not fold the ONNX model's shape computations for input {shape}: "
                         f"{str(exc).splitlines()[0]}") from None


class OnnxSource(TorchSource):
    """An .onnx classifier: rebuilt in PyTorch for litert-torch; ONNX Runtime is the reference."""

    kind = "onnx"

    def _load(self):
        try:
            import onnx
        except ImportError:
            raise UsageError("ONNX models need the torch extra: pip install 'int8lab[torch]'") from None
        try:
            model = onnx.load(str(self.path))
        except Exception as exc:  # protobuf's DecodeError and friends
            raise UsageError(f"{self.path} is not a readable ONNX model: {str(exc).splitlines()[0]}") from None
        initialisers = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initialisers]
        self.float16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer) or any(
            i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for i in inputs)
        if len(inputs) != 1:
            raise UsageError(f"{self.path}: int8lab takes models with one image input, got {len(inputs)}")
        dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
        if len(dims) == 4 and not all(dims[1:]) or _has_shape_ops(model):
            shape = self._fixed_shape(dims)
            model = fold_shapes(model, inputs[0].name, shape)
            self.static_batch = True  # the folded graph is traced for batch 1
        else:
            shape = (1, *dims[1:]) if len(dims) == 4 and all(dims[1:]) else None
            self.static_batch = bool(dims) and dims[0] is not None  # shapes inside were traced for it
        module = build_module(model)
        self.onnx_nodes = module.onnx_nodes
        return shape, module

    def tensor_origin(self, tensor: str) -> str | None:
        """The ONNX node that wrote ``tensor`` (a tensor of the float .tflite, named by litert-torch
        after the node's module), as "Gemm node '/model.16/value/MatMul'", or None."""
        found = NODE_KEY.search(tensor)
        node = getattr(self, "onnx_nodes", {}).get(found.group(1)) if found else None
        return f"{node[1]} node '{node[0]}'" if node else None

    def _fixed_shape(self, dims: list) -> tuple[int, ...]:
        """Dynamic axes (an Ultralytics ``dynamic=True`` export, say): batch 1, the channels the
        graph declares, and the height and width the user gives."""
        if len(dims) != 4:
            raise UsageError(f"{self.path}: expected one 4-D image input, got {len(dims)} dimensions")
        channels = dims[1] or self.options.channels
        size = self.options.input_size or (tuple(dims[2:]) if all(dims[2:]) else None)
        if channels is None or size is None:
            raise UsageError(f"{self.path} has dynamic input axes {dims}; give --input-size H W"
                             + ("" if channels else " and --channels C"))
        return (1, int(channels), int(size[0]), int(size[1]))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        session = self._session
        if session is None:
            return super().predict(batch)
        if self.options.io_layout == "nhwc":
            batch = batch.transpose(0, 3, 1, 2)
        name = session.get_inputs()[0].name
        dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
        return np.concatenate([session.run(None, {name: np.ascontiguousarray(batch[i:i + 1], dtype)})[0]
                               for i in range(len(batch))]).astype(np.float32)

    def with_module(self, module) -> "OnnxSource":
        clone = super().with_module(module)
        clone._ort = None  # the copy runs its own module, not the ONNX file
        return clone

    @property
    def _session(self):
        if not hasattr(self, "_ort"):
            try:
                import onnxruntime
            except ImportError:
                self._ort = None
            else:
                self._ort = onnxruntime.InferenceSession(str(self.path), session_options(onnxruntime),
                                                         providers=["CPUExecutionProvider"])
        return self._ort

    def export_onnx(self, path: Path) -> Path:
        raise UsageError("the model already is ONNX")


def session_options(onnxruntime):
    """ONNX Runtime's options with the threads this process may use: a Ray task says how many CPUs
    it holds in OMP_NUM_THREADS, which ONNX Runtime ignores (it starts a thread per core). Without
    this, 2 validation shards of YOLOv8n ran no faster than 1 on 2 cores."""
    options = onnxruntime.SessionOptions()
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
    return options
