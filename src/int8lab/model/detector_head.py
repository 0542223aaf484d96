"""Where a YOLO detector's int8 loses its boxes: the head's decode tail, found in the float .tflite.

After its last learned convolutions a YOLO head only decodes: it reshapes and concatenates the
per-scale maps, takes the DFL softmax and its expectation (a fixed 1 x 1 convolution), adds the
anchor grid, multiplies by the strides and joins boxes with sigmoid scores. In int8 each of these
tensors gets one scale over 8400 anchors: box coordinates land on a 2.5-pixel grid at 640 px,
and the expectation over 16 bins on a grid of 1/16 of a stride. These ops are cheap elementwise
and data-movement work, so keeping them in float costs little latency and no weights.

``head_plan`` names two nested candidate sets (the pipeline measures which to keep, see
int8lab.model.aeq): the decode tail alone, and the tail with the head's output convolutions
(the raw box and class logits, whose int8 range would otherwise have to span every logit a
calibration image happened to give).

``class_branch`` names the int8 tensors that feed only the class logits. Their calibrated ranges
come from whatever objects the calibration images hold: photos with none of the model's classes
give small maxima, and real detections would then clip below the confidence threshold. Their
maxima are widened by CLASS_BRANCH_MARGIN (measured: the example detector calibrated on 7 generic
photos keeps 90% of the float detections instead of 88%; the COCO YOLOv8n loses nothing
measurable).

``CONFIDENT``: where the float model scores a class above it on the calibration images, int8
class logits come out lower on average (about 0.16 on the COCO YOLOv8n: clipped and rounded
activations lose evidence), so detections near the confidence threshold drop out although mAP
(a ranking) hardly moves. With the class convolutions in float, int8lab adds that mean gap to
their biases: the operating point of the float model comes back (int8lab.model.aeq).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Ops that move or select values without computing new ones.
MOVEMENT_OPS = frozenset({"RESHAPE", "TRANSPOSE", "CONCATENATION", "SLICE", "STRIDED_SLICE", "SPLIT",
                          "SPLIT_V", "SQUEEZE", "EXPAND_DIMS", "GATHER", "PACK", "UNPACK"})
WEIGHTED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
CLASS_BRANCH_MARGIN = 2.0
# A dynamic-range body is taken where it is closer to float and at most this much slower than
# the best static int8 candidate, both measured here (both run int8 matrix kernels, so the ratio
# carries across CPUs better than either's against float, which VNNI decides). On AVX-512 VNNI it
# costs YOLOv3-tiny (LeakyReLU, max pools) 4-19% and YOLO-World, whose SiLUs then run in float,
# 21-50%, for 92% -> 98% and 91% -> 97% of the float detections kept on coco128.
DYNAMIC_RANGE_ALLOWANCE = 1.5
CONFIDENT = 0.1  # float class scores above this measure the int8 logits' mean gap
MIN_CONFIDENT = 50  # fewer confident scores than this on the calibration images: no shift


@dataclass(frozen=True)
class HeadPlan:
    """Output tensor names of the decode tail's ops, and of the head's output convolutions."""

    decode: tuple[str, ...]
    output_convolutions: tuple[str, ...]
    decode_ops: tuple[str, ...]  # op kinds, for the report

    def candidates(self) -> list[tuple[str, tuple[str, ...]]]:
        """(name, tensors left in float), from all int8 to the most float."""
        return [("full int8", ()),
                ("decode in float", self.decode),
                ("decode and output convolutions in float", self.decode + self.output_convolutions)]


def head_plan(content: bytes) -> HeadPlan | None:
    """The decode tail of a single-output float detector, walking back from its output: every op
    up to the last learned convolution on each path (a convolution fed by a softmax, DFL's
    expectation and what maps it on to the box, belongs to the tail). None when the tail joins
    fewer than two convolutions (a classifier's softmax) or computes nothing."""
    from int8lab.model.ranges import _graph, _op_name

    tfl, model, graph = _graph(content)
    if len(graph.outputs) != 1:
        return None
    producer = {t: op for op in graph.operators for t in op.outputs}
    kind = {id(op): _op_name(model, op) for op in graph.operators}

    def after_softmax(tensor: int) -> bool:
        """Fed by a softmax through data movement and fixed maps already after one (a Keras DFL
        is a Dense for the expectation, then a Dense for the box corners)."""
        while tensor in producer:
            op = producer[tensor]
            if kind[id(op)] == "SOFTMAX":
                return True
            if kind[id(op)] not in MOVEMENT_OPS | WEIGHTED_OPS:
                return False
            tensor = op.inputs[0]
        return False

    name = lambda t: tfl.get_tensor_name(graph.tensors[t])  # noqa: E731
    decode, convolutions, kinds, seen, stack = [], [], [], set(), [graph.outputs[0]]
    while stack:
        op = producer.get(stack.pop())
        if op is None or id(op) in seen:
            continue
        seen.add(id(op))
        if kind[id(op)] in WEIGHTED_OPS and not after_softmax(op.inputs[0]):
            convolutions.append(name(op.outputs[0]))
            continue
        decode.extend(name(t) for t in op.outputs)
        kinds.append(kind[id(op)])
        stack.extend(t for t in op.inputs if t >= 0)
    if len(convolutions) < 2 or all(k in MOVEMENT_OPS for k in kinds):  # a head joins box and class branches
        return None
    return HeadPlan(tuple(decode), tuple(sorted(convolutions)), tuple(sorted(set(kinds))))


def class_convolutions(content: bytes, plan: HeadPlan, num_classes: int) -> set[str]:
    """The output convolutions writing class logits: ``num_classes`` channels (NHWC, last)."""
    from int8lab.model.ranges import _graph

    tfl, _, graph = _graph(content)
    return {tfl.get_tensor_name(tensor) for tensor in graph.tensors
            if tfl.get_tensor_name(tensor) in plan.output_convolutions and tensor.shape[-1] == num_classes}


def class_branch(content: bytes, plan: HeadPlan, num_classes: int) -> set[str]:
    """Tensors computed only on the way to the class logits: the ancestors of the output
    convolutions with ``num_classes`` channels that no box convolution reads. Empty when the
    channel counts do not tell the two apart."""
    from int8lab.model.ranges import _graph

    tfl, _, graph = _graph(content)
    producer = {t: op for op in graph.operators for t in op.outputs}
    by_name = {tfl.get_tensor_name(graph.tensors[t]): t for t in producer}
    named = class_convolutions(content, plan, num_classes)
    classes = [by_name[n] for n in named]
    boxes = [by_name[n] for n in plan.output_convolutions if n not in named and n in by_name]
    if not classes or not boxes:
        return set()

    def ancestors(tensors: list[int]) -> set[int]:
        seen, stack = set(), list(tensors)
        while stack:
            tensor = stack.pop()
            if tensor in seen or tensor not in producer:
                continue
            seen.add(tensor)
            stack.extend(t for t in producer[tensor].inputs if t >= 0)
        return seen

    return {tfl.get_tensor_name(graph.tensors[t]) for t in ancestors(classes) - ancestors(boxes)}


def class_logit_adds(content: bytes, plan: HeadPlan, num_classes: int) -> set[str]:
    """Where a head without class convolutions gives its class logits their bias: the decode
    tail's ADDs of a constant (one number, or one per class) to a tensor with ``num_classes`` along
    an axis. YOLO-World's contrastive head: the L2-normalised embeddings times the text
    embeddings (BATCH_MATMUL), times a scale, plus a bias (-12.9)."""
    from int8lab.model.ranges import _graph, _op_name

    tfl, model, graph = _graph(content)
    decode = set(plan.decode)
    adds = set()
    for op in graph.operators:
        written = graph.tensors[op.outputs[0]]
        if _op_name(model, op) != "ADD" or tfl.get_tensor_name(written) not in decode:
            continue
        constants = [tfl.get_tensor_data(graph.tensors[t], model.buffers) for t in op.inputs]
        constants = [c for c in constants if c is not None]
        if len(constants) == 1 and constants[0].size in (1, num_classes) and num_classes in list(written.shape):
            adds.add(tfl.get_tensor_name(written))
    return adds


def objectness_channels(content: bytes, plan: HeadPlan, num_classes: int) -> tuple[set[str], int, int] | None:
    """An anchor-based head's output convolutions (YOLOv3/v4/v5/v7, Darknet): each writes, per
    anchor, box (4), objectness (1) and class (``num_classes``) logits in one map. -> (their names,
    the channel count, the group size 5 + classes), the objectness logit at 4 in each group; None
    when the head's convolutions are not of that form."""
    from int8lab.model.ranges import _graph

    tfl, _, graph = _graph(content)
    group = 5 + num_classes
    shapes = {tfl.get_tensor_name(t): int(t.shape[-1]) for t in graph.tensors
              if tfl.get_tensor_name(t) in plan.output_convolutions}
    channels = set(shapes.values())
    if len(channels) != 1 or next(iter(channels)) % group:
        return None
    return set(shapes), next(iter(channels)), group


def choose_head_precision(calibrated, head_score) -> dict | None:
    """The detector pass of int8lab.model.aeq's quantization: each candidate of ``head_plan``
    quantized from ``calibrated`` (an aeq.Calibrated) and scored by ``head_score`` against the
    float model on its calibration images; the closest is kept as ``calibrated.kept_float`` (the
    one with fewer float ops on a tie). With float I/O the best of them is measured again with
    its body in dynamic range (int8 weights; XNNPACK quantizes each convolution's input per
    image, over that image's range, and writes float): static int8 rounds every activation to
    one calibrated step and a float-trained detector's scores near the threshold with it
    (``_dynamic_range_verdict`` decides). The class branch's ranges are widened first
    (``class_branch``), and the class logits re-centred after (``recentre_class_logits``). The
    notes the sidecar and report keep, or None when the model has no decode tail."""
    from int8lab.benchmark import bench_latencies
    from int8lab.progress import steps
    from int8lab.runtime import LiteRTModel

    plan = head_plan(calibrated.content)
    if plan is None:
        return None
    widened = sorted(class_branch(calibrated.content, plan, head_score.num_classes) & set(calibrated.calibration))
    for name in widened:
        stats = calibrated.calibration[name]
        calibrated.calibration[name] = {**stats, "max": np.asarray(stats["max"]) * CLASS_BRANCH_MARGIN}
    images, reference = np.concatenate(calibrated.images), calibrated.reference
    scored, models, outputs = [], [], []

    def measure(name: str, tensors) -> None:
        content = calibrated.quantize(tensors)
        models.append(LiteRTModel(content))
        outputs.append(models[-1].predict(images))
        scored.append((float(head_score(reference, outputs[-1])), name, tensors, len(content)))

    candidates = plan.candidates()
    for name, tensors in steps(candidates, len(candidates), "candidates"):
        measure(name, tensors)
    best = max(scored, key=lambda row: row[0])  # the first, fewest float ops, wins a tie
    dynamic = calibrated.mode == "int8-float-io" and head_score.dynamic_range  # float I/O: a candidate
    if dynamic:  # the best static candidate's float ops, the rest in dynamic range
        calibrated.dynamic_range = True
        measure(f"dynamic range, {best[1]}", best[2])
        calibrated.dynamic_range = False
    latencies = bench_latencies(models, runs=20)
    verdict = _dynamic_range_verdict(scored, latencies, best) if dynamic else None
    if verdict and verdict["chosen"]:
        best = scored[-1]
        calibrated.dynamic_range = True
    calibrated.kept_float = best[2]
    recentred = recentre_class_logits(calibrated, plan, head_score, images, outputs[scored.index(best)])
    return {"chosen": best[1], "float_tensors": list(best[2]), "decode_ops": list(plan.decode_ops),
            "dynamic_range": verdict,
            "output_convolutions": len(plan.output_convolutions), "ranking_images": len(images),
            "class_branch_widened": len(widened), "class_branch_margin": CLASS_BRANCH_MARGIN,
            "metric": "mAP50-95 against the float model's detections",
            "candidates": [{"name": name, "score": score, "float_tensors": len(tensors), "size_bytes": size,
                            "latency_ms": latency["mean_ms"]}
                           for (score, name, tensors, size), latency in zip(scored, latencies)],
            "class_logit_shift": recentred}


def _dynamic_range_verdict(scored: list, latencies: list[dict], static: tuple) -> dict:
    """Whether the dynamic-range candidate (the last of ``scored`` and ``latencies``) replaces
    the best ``static`` one: closer to float, and at most DYNAMIC_RANGE_ALLOWANCE times static's
    latency."""
    dynamic_ms, static_ms = latencies[-1]["mean_ms"], latencies[scored.index(static)]["mean_ms"]
    chosen = scored[-1][0] > static[0] and dynamic_ms <= DYNAMIC_RANGE_ALLOWANCE * static_ms
    return {"chosen": bool(chosen), "score": scored[-1][0], "static_score": static[0], "latency_ms": dynamic_ms,
            "static_latency_ms": static_ms, "allowance": DYNAMIC_RANGE_ALLOWANCE}


def recentre_class_logits(calibrated, plan: HeadPlan, head_score, images: np.ndarray,
                          quantized: np.ndarray) -> dict | None:
    """Add to the float class convolutions' biases the mean gap between float and int8 class
    logits where the float model is confident (CONFIDENT), measured on ``calibrated``'s images
    (``quantized``: the chosen candidate's outputs on them). Kept when the int8 model then finds
    as many detections at the operating point as the float one, or comes closer (added less
    missed): the shift corrects a bias, so it is judged by one; the share of float detections
    kept would take any upward shift, since what int8 adds costs that share nothing. A shift
    that carries the count past float's, further than it was, is tried again at half.

    A head whose class logits come from no convolution of their own (YOLO-World's) has the
    constant added to them moved (``class_logit_adds``). An anchor-based head
    (``objectness_channels``) has its objectness logits moved: they scale every class of an
    anchor. YOLOv3-tiny's gap, +0.034, is measured and not kept: its int8 model already finds
    more detections than float (139 against 138 on the calibration images; 142 with the shift).
    On 463 photos the shift would keep 94.1% of the float detections instead of 93.0%, with 103
    detections added instead of 84."""
    from int8lab.runtime import LiteRTModel

    layers = (class_convolutions(calibrated.content, plan, head_score.num_classes)
              or class_logit_adds(calibrated.content, plan, head_score.num_classes))
    anchors = None if layers else objectness_channels(calibrated.content, plan, head_score.num_classes)
    if anchors is not None:
        layers = anchors[0]
    reference = calibrated.reference
    pairs = head_score.score_pairs(reference, quantized, CONFIDENT)
    if not layers or not layers <= set(calibrated.kept_float) or pairs is None:
        return None
    float_scores, int8_scores = pairs
    if len(float_scores) < MIN_CONFIDENT:
        return {"kept": False, "reason": f"{len(float_scores)} confident class scores on the calibration "
                                         f"images, fewer than {MIN_CONFIDENT}"}
    delta = float(np.mean(_logit(float_scores) - _logit(int8_scores)))

    def shifted(step: float) -> dict:
        if anchors is not None:
            _, channels, group = anchors
            per_channel = np.zeros(channels, np.float32)
            per_channel[4::group] = step
            calibrated.shift_class_logits((layers, per_channel))
        else:
            calibrated.shift_class_logits((layers, step))
        return head_score.operating_point(reference, LiteRTModel(calibrated.quantize()).predict(images))

    def surplus(point: dict) -> int:  # int8 detections at the operating point less float's
        return point["extra"] - point["missed"]

    before = head_score.operating_point(reference, quantized)
    after = shifted(delta)
    if surplus(after) * surplus(before) < 0 and abs(surplus(after)) > abs(surplus(before)):
        delta /= 2  # past float's count: half the gap (an end-to-end head: 17 fewer -> 30 more)
        after = shifted(delta)
    kept = abs(surplus(after)) <= abs(surplus(before))
    if not kept:
        calibrated.shift_class_logits(None)
    return {"kept": kept, "delta": delta, "layers": len(layers), "confident_scores": len(float_scores),
            "logits": "objectness" if anchors is not None else "class",
            "detections_kept_before": before["kept"], "detections_kept_after": after["kept"],
            "missed_and_extra_before": [before["missed"], before["extra"]],
            "missed_and_extra_after": [after["missed"], after["extra"]]}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
