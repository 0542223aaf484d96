"""The detection task: YOLO-style raw outputs decoded to boxes, scored with mAP against the
labels (YOLO txt, COCO JSON or Pascal VOC: int8lab.data.annotations) and against the float
model's own detections, in one streaming pass.

Heads understood: Ultralytics v8/v11 (``[1, 4 + classes, anchors]`` or transposed; box centre
x, y, width, height, then sigmoid class scores) and v5 (``[1, anchors, 5 + classes]``: an
objectness score after the box, multiplied into the class scores).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from int8lab import imageops
from int8lab.data.annotations import GroundTruth, dataset_names, ground_truth
from int8lab.data.tensor_store import RowReader, row_writer
from int8lab.errors import UsageError
from int8lab.tasks import boxes as box_ops
from int8lab.tasks.boxes import box_iou, to_original
from int8lab.tasks.detection_metrics import DetectionAccumulator
from int8lab.evalset import Replay, image_batches, predict_batches

CONFIDENCE = 0.25  # the operating point: detections an app would show
MAP_CONFIDENCE = 0.001  # mAP integrates over all scores, as Ultralytics' val does
END_TO_END_CHANNELS = 6  # x1, y1, x2, y2, score, class
MAX_END_TO_END_ROWS = 1000  # an NMS-free head keeps max_det rows (300 by default)
NMS_IOU = 0.7
MAX_DETECTIONS = 300


@dataclass(frozen=True)
class DetectionLayout:
    """How to read one detector output tensor."""

    channel_axis: int  # axis of the 4 (+1) + classes channels: 1, or 2 for [1, anchors, channels]
    num_classes: int
    objectness: bool = False  # v5 heads
    boxes: str = "pixels"  # "normalized": divided by the input size (int8lab's int8 rewrite); "normalized-yxhw"
    # (int8lab.model.mediapipe_detector: centre y, x, height, width as MediaPipe reads them)
    input_size: tuple[int, int] = (640, 640)
    end_to_end: bool = False  # [1, K, 6] rows (x1, y1, x2, y2, score, class) an NMS-free head selected
    nms: str = "class-aware"  # or "mediapipe": class-agnostic at IoU 0.3, as MediaPipe's ObjectDetector runs it

    def as_dict(self) -> dict:
        return {**asdict(self), "input_size": list(self.input_size)}

    @classmethod
    def from_dict(cls, data: dict) -> "DetectionLayout":
        return cls(**{**data, "input_size": tuple(data["input_size"])})

    def with_boxes(self, boxes: str) -> "DetectionLayout":
        return replace(self, boxes=boxes)


def looks_like_detector(output_shape: tuple[int, ...]) -> bool:
    """[1, C, N] or [1, N, C] with at least a box and one class, and more anchors than channels."""
    return len(output_shape) == 3 and min(output_shape[1:]) >= 5 and max(output_shape[1:]) > min(output_shape[1:])


def resolve_layout(output_shape: tuple[int, ...], input_size: tuple[int, int],
                   num_classes: int | None = None) -> DetectionLayout:
    if not looks_like_detector(output_shape):
        raise UsageError(f"output shape {tuple(output_shape)} is not a YOLO-style detector output "
                         f"([1, 4 + classes, anchors] or [1, anchors, 5 + classes])")
    channel_axis = 1 if output_shape[1] < output_shape[2] else 2
    channels = output_shape[channel_axis]
    if channel_axis == 2 and channels == END_TO_END_CHANNELS and output_shape[1] <= MAX_END_TO_END_ROWS \
            and num_classes not in (1, 2):  # YOLO26 / YOLOv10 selected its rows; a v5 / v8 head has thousands
        if num_classes is None:
            raise UsageError(f"output {tuple(output_shape)} is an end-to-end detector's (x1, y1, x2, y2, score, "
                             f"class rows), which does not say how many classes it has: give the class names "
                             f"(a data.yaml beside the images, or --labels)")
        return DetectionLayout(2, num_classes, False, "pixels", tuple(input_size), end_to_end=True)
    if num_classes is None or channels == 4 + num_classes:
        return DetectionLayout(channel_axis, channels - 4, False, "pixels", tuple(input_size))
    if channels == 5 + num_classes:
        return DetectionLayout(channel_axis, num_classes, True, "pixels", tuple(input_size))
    raise UsageError(f"the detector has {channels} output channels; with {num_classes} class names that "
                     f"is neither 4 + classes (v8) nor 5 + classes (v5): check the names (data.yaml or --labels)")


def decode(output: np.ndarray, layout: DetectionLayout, confidence: float = CONFIDENCE,
           iou: float = NMS_IOU, max_detections: int = MAX_DETECTIONS):
    """One image's raw output -> (xyxy boxes in input pixels, scores, classes) after NMS."""
    return box_ops.decode(output, layout.as_dict(), confidence, iou, max_detections)


class Pairing:
    """Float (reference) detections at the operating point against the quantized ones: how many
    the quantized model keeps, and how far its boxes moved."""

    def __init__(self):
        self.reference = self.quantized = self.kept = 0
        self.box_error_sum = 0.0

    def update(self, ref, quant) -> None:
        (rb, _, rc), (qb, _, qc) = ref, quant
        self.reference += len(rb)
        self.quantized += len(qb)
        if not len(rb) or not len(qb):
            return
        iou = box_iou(rb, qb) * (rc[:, None] == qc[None, :])
        taken = np.zeros(len(qb), bool)
        for r in np.argsort(-iou.max(axis=1)):
            candidates = np.where(taken, -1.0, iou[r])
            q = int(candidates.argmax())
            if candidates[q] >= 0.5:
                taken[q] = True
                self.kept += 1
                self.box_error_sum += float(np.abs(rb[r] - qb[q]).mean())

    def merge(self, other: "Pairing") -> "Pairing":
        self.reference += other.reference
        self.quantized += other.quantized
        self.kept += other.kept
        self.box_error_sum += other.box_error_sum
        return self

    def result(self, images: int) -> dict:
        return {"detections_per_image": {"reference": self.reference / max(images, 1),
                                         "quantized": self.quantized / max(images, 1)},
                "detections_kept": self.kept / self.reference if self.reference else None,
                "mean_box_error_px": self.box_error_sum / self.kept if self.kept else None}


@dataclass
class State:
    """What one pass (or one shard) over the images leaves: per-detection records and counts."""

    against_labels: dict | None
    against_reference: DetectionAccumulator
    pairing: Pairing
    skipped: list = field(default_factory=list)

    def merge(self, other: "State") -> "State":
        if self.against_labels is not None:
            for model, accumulator in self.against_labels.items():
                accumulator.merge(other.against_labels[model])
        self.against_reference.merge(other.against_reference)
        self.pairing.merge(other.pairing)
        self.skipped += other.skipped
        return self


def evaluate_samples(reference, quantized, samples, files, spec: dict, reference_layout: DetectionLayout,
                     quantized_layout: DetectionLayout, truth: GroundTruth | None) -> State:
    """Stream ``samples`` ((source index, tensor) pairs) through both models, batch by batch,
    and accumulate every metric; nothing per image is kept but each detection's small record."""
    classes = quantized_layout.num_classes
    state = State({"reference": DetectionAccumulator(classes), "quantized": DetectionAccumulator(classes)}
                  if truth is not None else None, DetectionAccumulator(classes), Pairing())
    for chunk in image_batches(samples):
        batch = np.stack([tensor for _, tensor in chunk])
        outputs = reference.predict(batch), quantized.predict(batch)
        for k, (index, _) in enumerate(chunk):
            path = Path(files[index])
            size = imageops.upright_size(path)
            ref, quant = (_in_original(decode(out[k], layout, MAP_CONFIDENCE), size, spec)
                          for out, layout in zip(outputs, (reference_layout, quantized_layout)))
            if truth is not None:
                boxes, classes, kinds = truth.of(path, size)
                state.against_labels["reference"].update(*ref, boxes, classes, index, kinds)
                state.against_labels["quantized"].update(*quant, boxes, classes, index, kinds)
            confident_ref, confident_quant = _confident(ref), _confident(quant)
            state.against_reference.update(*quant, confident_ref[0], confident_ref[2], index)
            state.pairing.update(confident_ref, confident_quant)
    return state


def map_against_reference(reference: np.ndarray, quantized: np.ndarray, layout: DetectionLayout) -> float:
    """mAP50-95 of ``quantized`` raw outputs against the confident detections decoded from
    ``reference`` (same layout, input pixels): how int8lab ranks a detector's precision choices."""
    accumulator = DetectionAccumulator(layout.num_classes)
    for index, (ref, quant) in enumerate(zip(reference, quantized)):
        boxes, _, classes = _confident(decode(ref, layout, MAP_CONFIDENCE))
        accumulator.update(*decode(quant, layout, MAP_CONFIDENCE), boxes, classes, index)
    return accumulator.result()["map50_95"] or 0.0


@dataclass(frozen=True)
class HeadScore:
    """The ``head_score`` of int8lab.model.aeq: how close a candidate's raw outputs are to the
    float model's, and how many classes the head has (to tell its class branch from its boxes)."""

    layout: DetectionLayout
    dynamic_range: bool = True  # a dynamic-range body may be measured (float activations: not with --integer-only)

    @property
    def num_classes(self) -> int:
        return self.layout.num_classes

    def __call__(self, reference: np.ndarray, quantized: np.ndarray) -> float:
        return map_against_reference(reference, quantized, self.layout)

    def score_pairs(self, reference: np.ndarray, quantized: np.ndarray, above: float):
        """(float, int8) class scores of the same predictions wherever the float one exceeds
        ``above``: anchor by anchor, or for an end-to-end head (rows in each model's own order)
        detection by detection (each float detection with the int8 one of its class it overlaps
        most, IoU >= 0.5). For v5's objectness heads, the scores it decodes: objectness x class."""
        if not self.layout.end_to_end:
            channels = [np.moveaxis(o, self.layout.channel_axis, -1) for o in (reference, quantized)]
            scores = [c[..., 5:] * c[..., 4:5] if self.layout.objectness else c[..., 4:] for c in channels]
            confident = scores[0] > above
            return scores[0][confident], scores[1][confident]
        pairs = []
        for ref, quant in zip(reference, quantized):
            (rb, rs, rc), (qb, qs, qc) = decode(ref, self.layout, above), decode(quant, self.layout, MAP_CONFIDENCE)
            if len(rb) and len(qb):
                iou = box_iou(rb, qb) * (rc[:, None] == qc[None, :])
                best = iou.argmax(axis=1)
                matched = iou[np.arange(len(rb)), best] >= 0.5
                pairs.extend(zip(rs[matched], qs[best[matched]]))
        return tuple(np.array(side, np.float64) for side in zip(*pairs)) if pairs else (np.zeros(0), np.zeros(0))

    @property
    def output_error_measure(self) -> str | None:
        """What bias correction is judged by when not by the relative output error (int8lab.model.
        bias_correction): an end-to-end head's rows come in each model's own score order."""
        return "1 - mAP50-95 against the float detections" if self.layout.end_to_end else None

    def output_error(self, reference: np.ndarray, quantized: np.ndarray) -> float:
        """The ``output_error_measure``: lower is closer."""
        return 1.0 - self(reference, quantized)

    def operating_point(self, reference: np.ndarray, quantized: np.ndarray) -> dict:
        """``quantized``'s detections at the operating point against the reference's: the share
        of the reference's it keeps, and how many it misses and adds. The share kept alone rewards
        any shift of the scores upwards (extra detections cost it nothing); misses + extras do not."""
        pairing = Pairing()
        for ref, quant in zip(reference, quantized):
            pairing.update(decode(ref, self.layout), decode(quant, self.layout))
        return {"kept": pairing.kept / pairing.reference if pairing.reference else 0.0,
                "missed": pairing.reference - pairing.kept, "extra": pairing.quantized - pairing.kept}


def head_scorer(task: dict) -> HeadScore | None:
    """The ``head_score`` for a detect task, else None."""
    if task.get("name") != "detect" or "layout" not in task:
        return None
    return HeadScore(DetectionLayout.from_dict(task["layout"]))


def results_of(state: State, reference_layout: DetectionLayout, quantized_layout: DetectionLayout) -> dict:
    labelled = state.against_labels is not None
    scored = {model: acc.result() for model, acc in state.against_labels.items()} if labelled else {}
    vs_reference = state.against_reference.result()
    empty = {"map50": None, "map50_95": None, "precision": None, "recall": None}
    quant, ref = scored.get("quantized", empty), scored.get("reference", empty)
    return {
        "task": "detect", "num_images": state.against_reference.images, "labelled": labelled,
        "map50": quant["map50"], "map50_95": quant["map50_95"],
        "map50_reference": ref["map50"], "map50_95_reference": ref["map50_95"],
        "map50_drop_points": (100 * (ref["map50"] - quant["map50"]) if labelled and quant["map50"] is not None
                              else None),
        "map50_vs_reference": vs_reference["map50"], "map50_95_vs_reference": vs_reference["map50_95"],
        "precision": {"reference": ref["precision"], "quantized": quant["precision"]},
        "recall": {"reference": ref["recall"], "quantized": quant["recall"]},
        **state.pairing.result(state.against_reference.images),
        "confidence": CONFIDENCE, "nms_iou": NMS_IOU,
        "per_class_ap50": {"reference": ref.get("ap50_per_class"), "quantized": quant.get("ap50_per_class")},
        "layouts": {"reference": reference_layout.as_dict(), "quantized": quantized_layout.as_dict()},
    }


def evaluate(reference, quantized, samples, files, spec: dict, reference_layout: DetectionLayout,
             quantized_layout: DetectionLayout, truth: GroundTruth | None) -> dict:
    """One streaming pass, scored (the lab and the benchmark call this on their own samples)."""
    state = evaluate_samples(reference, quantized, samples, files, spec, reference_layout, quantized_layout,
                             truth)
    return results_of(state, reference_layout, quantized_layout)


def _in_original(detections, size, spec):
    boxes, scores, classes = detections
    return to_original(boxes, size, spec), scores, classes


def _confident(detections):
    boxes, scores, classes = detections
    keep = scores >= CONFIDENCE
    return boxes[keep], scores[keep], classes[keep]


name = "detect"
EXPERIMENT_COLUMNS = (("map50", "mAP50 %"), ("map50_95", "mAP50-95 %"), ("map50_vs_reference", "mAP50 vs float %"),
                      ("detections_kept", "float detections kept %"))
HEADLINE = (("map50", "mAP50"), ("map50_vs_reference", "mAP50 against the float model"))
AGREEMENT = ("map50_vs_reference", "mAP50 against the float model")
RECOVERY_METRICS = (("map50_95", "mAP50-95 (labels)"), ("map50_95_vs_reference", "mAP50-95 vs the float model"))


def drop_function(source, ranking, task: dict, spec, progress=None):
    """(metric words, drop_of(content) in points) for ``--max-drop``: 100 x (1 - mAP50-95 of the
    candidate against the float model's own detections) on the ranking set; mAP50-95, because
    boxes that move a few pixels cost little at IoU 0.5. The float model's raw outputs (large:
    channels x anchors an image) wait on disk beside the ranking images."""
    from int8lab.runtime import LiteRTModel

    path = ranking.tensors.path.with_name(f"{ranking.tensors.path.stem}_float_outputs.npy")
    with row_writer(path) as write:
        for outputs in predict_batches(source, ranking.tensors, "ranking set (float)", progress):
            write(outputs)
    reference = RowReader(path)

    def drop_of(content: bytes) -> float:
        """Every candidate comes from the model the int8 modes convert: the task's layout holds."""
        return 100 * (1 - experiment_metrics(reference, LiteRTModel(content), ranking, task, spec, None, "")
                      ["map50_95_vs_reference"])

    return "mAP50-95 against the float model", drop_of


def experiment_metrics(native, model, eval_set, task: dict, spec, out_dir, title: str) -> dict:
    """One lab variant's figures: ``model`` on the evaluation images against the float model's
    stored outputs ``native``, in the same streaming evaluation as validate."""
    layout = DetectionLayout.from_dict(task["layout"])
    results = evaluate(Replay(native), model, enumerate(eval_set.tensors), list(eval_set.files), spec.as_dict(),
                       layout.with_boxes("pixels"), layout, ground_truth(list(eval_set.files), task.get("names")))
    return {key: results[key] for key in ("map50", "map50_95", "map50_reference", "map50_vs_reference",
                                          "map50_95_vs_reference", "detections_kept", "mean_box_error_px")}


def plan(index, quantized, spec, labels, sidecar, data_dir) -> dict:
    """What every shard needs to score its images: the files, both layouts, the class names."""
    names = labels or (sidecar or {}).get("labels") or dataset_names(data_dir)  # the model's own order first
    quantized_layout = layout_of(quantized, sidecar, spec, names, first_tensor(index, spec))
    source = ((sidecar or {}).get("task") or {}).get("source_layout")  # before a target's output form
    reference_layout = replace(DetectionLayout.from_dict(source), nms=quantized_layout.nms).with_boxes("pixels") \
        if source else quantized_layout.with_boxes("pixels")
    files = [str(f) for f in index.files]
    return {"files": files, "spec": spec.as_dict(), "quantized_layout": quantized_layout,
            "reference_layout": reference_layout, "truth": ground_truth(files, names, index.dataset_type),
            "class_names": names}


def first_tensor(index, spec) -> np.ndarray | None:
    """The first decodable image of ``index`` as the model takes it (None if there is none)."""
    for file in index.files[:10]:
        try:
            return imageops.load_tensor(file, spec.as_dict())
        except imageops.ImageDecodeError:
            continue
    return None


def accumulate(reference, quantized, generator, plan: dict) -> State:
    state = evaluate_samples(reference, quantized, generator.generate_samples(), plan["files"], plan["spec"],
                             plan["reference_layout"], plan["quantized_layout"], plan["truth"])
    state.skipped = [s.as_dict() for s in generator.errors]
    return state


def merge(states: list[State]) -> State:
    merged = states[0]
    for state in states[1:]:
        merged.merge(state)
    return merged


def finish(state: State, plan: dict, out_dir: Path) -> dict:
    results = results_of(state, plan["reference_layout"], plan["quantized_layout"])
    return {**results, "class_names": plan["class_names"], "skipped_files": state.skipped}


NORMALISED_BOX_LIMIT = 4.0  # every anchor's box within this, on a sample, is in fractions of the input (pixel
# boxes span the input: their centres cover the anchor grid)


def layout_of(quantized, sidecar: dict | None, spec, names: list[str], sample: np.ndarray | None = None) -> DetectionLayout:
    """The layout int8lab recorded beside the model, else read from its output shape, with the
    box unit read from its output on ``sample`` (one input tensor): Ultralytics' own int8 exports
    give boxes as fractions of the input size."""
    recorded = ((sidecar or {}).get("task") or {}).get("layout")
    if recorded:
        return DetectionLayout.from_dict(recorded)
    shape = tuple(int(d) for d in quantized.output["shape"])
    layout = resolve_layout(shape, spec.input_size, len(names) or None)
    if sample is not None:
        rows = quantized.invoke(sample[np.newaxis])[0]
        rows = rows if layout.channel_axis == 2 else rows.T
        if np.abs(rows[:, :4]).max() <= NORMALISED_BOX_LIMIT < min(spec.input_size) / 8:
            layout = layout.with_boxes("normalized")
    return layout


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report_rows(v: dict) -> list[str]:
    return [f"| mAP50 (labels) | {_num(v['map50_reference'])} | {_num(v['map50'])} |",
            f"| mAP50-95 (labels) | {_num(v['map50_95_reference'])} | {_num(v['map50_95'])} |",
            f"| precision @ {v['confidence']} | {_num(v['precision']['reference'])} | "
            f"{_num(v['precision']['quantized'])} |",
            f"| recall @ {v['confidence']} | {_num(v['recall']['reference'])} | {_num(v['recall']['quantized'])} |",
            f"| detections per image @ {v['confidence']} | {v['detections_per_image']['reference']:.2f} | "
            f"{v['detections_per_image']['quantized']:.2f} |"]


def report_notes(v: dict) -> list[str]:
    lines = [f"- mAP50 of the quantized model against the float model's own detections (score ≥ "
             f"{v['confidence']}): **{_num(v['map50_vs_reference'])}**; mAP50-95: {_num(v['map50_95_vs_reference'])}",
             f"- float detections kept (same class, IoU ≥ 0.5): **{_pct(v['detections_kept'])}**; mean box "
             f"error of the kept ones: {_num(v['mean_box_error_px'], 2)} px"]
    if v.get("map50_drop_points") is not None:
        lines.append(f"- mAP50 drop against the labels: **{v['map50_drop_points']:.2f} points**")
    if not v["labelled"]:
        lines.append("- the split has no `labels/` folder: mAP against labels is not measured")
    return lines


def report_details(v: dict) -> list[str]:
    per_class = v["per_class_ap50"]
    if not per_class.get("quantized"):
        return []
    names = v.get("class_names") or []
    lines = ["", "## AP50 per class", "", "| class | float | quantized |", "|---|---|---|"]
    for cls, ap in per_class["quantized"].items():
        label = names[int(cls)] if int(cls) < len(names) else str(cls)
        lines.append(f"| {label} | {per_class['reference'].get(cls, 0.0):.4f} | {ap:.4f} |")
    return lines


def console_lines(v: dict) -> list[str]:
    lines = [f"  mAP50 (labels): float {_num(v['map50_reference'])}, quantized {_num(v['map50'])}; "
             f"mAP50-95: float {_num(v['map50_95_reference'])}, quantized {_num(v['map50_95'])}",
             f"  vs the float model's detections: mAP50 {_num(v['map50_vs_reference'])}, "
             f"mAP50-95 {_num(v['map50_95_vs_reference'])}",
             f"  detections kept {_pct(v['detections_kept'])}, per image: float "
             f"{v['detections_per_image']['reference']:.2f}, quantized {v['detections_per_image']['quantized']:.2f}; "
             f"box error {_num(v['mean_box_error_px'], 2)} px"]
    return lines
