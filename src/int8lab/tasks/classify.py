"""The classification task: top-1/top-5 agreement, accuracy, precision, recall, G-mean and the
confusion matrices of the float and quantized models on held-out images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from int8lab.atomic import atomic_write
from int8lab.evaluate import ClassificationAccumulator, agreement_from_sums, matrix_metrics
from int8lab.report.plots import confusion_matrix_png
from int8lab.evalset import Replay, class_labels, eval_batches, image_batches, predict_batches

name = "classify"
# The lab's columns (key, header), its headline metric (with labels, and without), and the metric
# that says how closely a variant follows the float model.
EXPERIMENT_COLUMNS = (("accuracy", "accuracy %"), ("precision_macro", "precision %"), ("recall_macro", "recall %"),
                      ("g_mean", "G-mean %"), ("top1_agreement", "top-1 agreement %"), ("tie_rate", "tie rate %"))
HEADLINE = (("accuracy", "accuracy"), ("top1_agreement", "top-1 agreement"))
AGREEMENT = ("top1_agreement", "top-1 agreement")
RECOVERY_METRICS = (("accuracy_quantized", "accuracy"), ("top1_agreement", "top-1 agreement"))


def drop_function(source, ranking, task: dict, spec, progress=None, agreement: bool = False):
    """(metric words, drop_of(content) in points) for ``--max-drop`` on the ranking set: accuracy
    lost against the float model when labelled, else (or with ``agreement``: ``--min-agreement``)
    top-1 disagreement with it. Only each image's top-1 class is kept, and the images are read
    batch by batch."""
    from int8lab.runtime import LiteRTModel

    reference = _top1(source, ranking.tensors, "ranking set (float)", progress)
    labelled = ranking.labels is not None and not agreement

    def drop_of(content: bytes) -> float:
        top1 = _top1(LiteRTModel(content), ranking.tensors)
        if labelled:
            return 100 * float(np.mean(reference == ranking.labels) - np.mean(top1 == ranking.labels))
        return 100 * float(1 - np.mean(top1 == reference))

    return ("accuracy" if labelled else "top-1 agreement"), drop_of


def _top1(model, tensors, description: str = "", progress=False) -> np.ndarray:
    return np.concatenate([out.reshape(len(out), -1).argmax(axis=1)
                           for out in predict_batches(model, tensors, description, progress)])


@dataclass
class State:
    """What one pass (or one shard) over the images leaves: small, and it merges exactly."""

    accumulator: ClassificationAccumulator | None = None
    warnings: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def plan(index, quantized, spec, labels, sidecar, data_dir) -> dict:
    """What every shard needs to score its images: the class names and each source's class."""
    class_names, label_of = class_labels(index, labels)
    return {"class_names": class_names, "label_of": label_of}


def accumulate(reference, quantized, generator, plan: dict) -> State:
    """Stream the generator's images through both models batch by batch (constant memory)."""
    class_names, label_of = plan["class_names"], plan["label_of"]
    state = State()
    for chunk in image_batches(generator.generate_samples()):
        rows, batch = np.array([i for i, _ in chunk]), np.stack([t for _, t in chunk])
        reference_out, quantized_out = reference.predict(batch), quantized.predict(batch)
        if state.accumulator is None:
            outputs = reference_out.reshape(len(batch), -1).shape[1]
            if label_of is not None and outputs != len(class_names):
                state.warnings.append(
                    f"{len(class_names)} class names ({', '.join(class_names[:5])}...) for a model with {outputs} "
                    f"outputs: they cannot be its classes, so the images count as unlabelled (give --labels with "
                    f"the model's class names, in index order)")
                label_of = None
            state.accumulator = ClassificationAccumulator(class_names, label_of is not None)
        state.accumulator.update(reference_out, quantized_out, None if label_of is None else label_of[rows])
    state.skipped = [s.as_dict() for s in generator.errors]
    return state


def merge(states: list[State]) -> State:
    merged = State(None, states[0].warnings, [])
    for state in states:
        if state.accumulator is not None:
            merged.accumulator = state.accumulator if merged.accumulator is None else merged.accumulator.merge(
                state.accumulator)
        merged.skipped += state.skipped
    return merged


JSON_MATRIX_CLASSES = 100  # above this, the confusion matrices go to .npy files beside the JSON


def finish(state: State, plan: dict, out_dir: Path) -> dict:
    """The results dict, and the confusion matrices drawn into ``out_dir``."""
    results = {"task": name, **state.accumulator.result(), "skipped_files": state.skipped,
               "warnings": state.warnings}
    if state.accumulator.labelled:
        out_dir.mkdir(parents=True, exist_ok=True)
        for model in ("reference", "quantized"):
            matrix = state.accumulator.confusion[model]
            results[model]["confusion_png"] = confusion_matrix_png(
                matrix, plan["class_names"], f"{model} model", out_dir / f"confusion_{model}.png").name
            if len(matrix) > JSON_MATRIX_CLASSES:  # a million counts are no JSON to read
                with atomic_write(out_dir / f"confusion_{model}.npy") as handle:
                    np.save(handle, matrix)
                results[model]["confusion_matrix"] = None
                results[model]["confusion_matrix_npy"] = f"confusion_{model}.npy"
    return results


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def report_rows(v: dict) -> list[str]:
    """Rows of the report's float-vs-quantized table."""
    rows = [f"| accuracy | {_pct(v['accuracy_reference'])} | {_pct(v['accuracy_quantized'])} |"]
    if v.get("reference"):
        for key, label in (("precision_macro", "precision (macro)"), ("recall_macro", "recall (macro)"),
                           ("g_mean", "G-mean")):
            if key == "g_mean" and (v["reference"].get("g_mean_note") or v["quantized"].get("g_mean_note")):
                rows.append(f"| {label} | n/a | n/a |")
                continue
            rows.append(f"| {label} | {v['reference'][key]:.4f} | {v['quantized'][key]:.4f} |")
    return rows


def report_notes(v: dict) -> list[str]:
    lines = [f"- top-1 agreement with the float model: **{_pct(v['top1_agreement'])}** (argmax; tie rate "
             f"{_pct(v['tie_rate'])}, tie-aware {_pct(v['tie_aware_top1_agreement'])}); "
             f"top-5 agreement: {_pct(v['top5_agreement'])}"]
    if v.get("accuracy_drop_points") is not None:
        lines.append(f"- accuracy drop: **{v['accuracy_drop_points']:.2f} points**")
    lines.append(f"- output error: mean |Δ| {v['mean_abs_output_error']:.5f}, max |Δ| "
                 f"{v['max_abs_output_error']:.5f}, mean cosine similarity {v['mean_cosine_similarity']:.5f}")
    return lines


PER_CLASS_ROWS = 30  # more classes than this: the lowest recalls only


def report_details(v: dict) -> list[str]:
    if not v.get("reference"):
        return []
    quantized = v["quantized"]
    per_class = sorted(quantized["per_class"].items(), key=lambda item: item[1]["recall"])
    shown = per_class if len(per_class) <= PER_CLASS_ROWS else per_class[:PER_CLASS_ROWS]
    heading = ("## Per class (quantized)" if shown is per_class else
               f"## The {PER_CLASS_ROWS} classes of lowest recall (quantized; {len(per_class)} in all)")
    lines = ["", heading, "", "| class | precision | recall | support |", "|---|---|---|---|"]
    for label, scores in (quantized["per_class"].items() if shown is per_class else shown):
        lines.append(f"| {label} | {scores['precision']:.3f} | {scores['recall']:.3f} | {scores['support']} |")
    if quantized.get("g_mean_note"):
        lines += ["", f"G-mean: {quantized['g_mean_note']}."]
    if quantized.get("most_confused"):
        lines += ["", "## Most confused (quantized)", "", "| true | predicted as | images |", "|---|---|---|"]
        lines += [f"| {p['true']} | {p['predicted']} | {p['images']} |" for p in quantized["most_confused"]]
    return lines + ["", f"![float confusion matrix]({v['reference']['confusion_png']})",
                    f"![quantized confusion matrix]({quantized['confusion_png']})"]


def console_lines(v: dict) -> list[str]:
    lines = [f"  top-1 agreement {_pct(v['top1_agreement'])} (tie rate {_pct(v['tie_rate'])}, tie-aware "
             f"{_pct(v['tie_aware_top1_agreement'])}), top-5 agreement {_pct(v['top5_agreement'])}",
             f"  accuracy: float {_pct(v['accuracy_reference'])}, quantized {_pct(v['accuracy_quantized'])}"]
    if v.get("accuracy_drop_points") is not None:
        g_mean = (f"G-mean {v['quantized']['g_mean_note']}" if v["quantized"].get("g_mean_note") else
                  f"G-mean float {v['reference']['g_mean']:.4f}, quantized {v['quantized']['g_mean']:.4f}")
        lines.append(f"  accuracy drop {v['accuracy_drop_points']:.2f} points; {g_mean}")
    lines.append(f"  output: mean |error| {v['mean_abs_output_error']:.5f}, cosine {v['mean_cosine_similarity']:.5f}")
    return lines


def experiment_metrics(native, model, eval_set, task: dict, spec, out_dir: Path | None, title: str) -> dict:
    """One lab variant's figures (and its confusion PNG in ``out_dir``): ``model`` on the
    evaluation images, batch by batch, against the float model's stored outputs ``native``."""
    accumulator = ClassificationAccumulator(eval_set.class_names, eval_set.labels is not None)
    for labels, reference, outputs in eval_batches(eval_set, Replay(native), model):
        accumulator.update(reference, outputs, labels)
    metrics = agreement_from_sums(accumulator.sums)
    if accumulator.labelled:
        matrix = accumulator.confusion["quantized"]
        labelled = matrix_metrics(matrix, eval_set.class_names)
        metrics.update({k: labelled[k] for k in ("accuracy", "precision_macro", "recall_macro", "g_mean")})
        if out_dir is not None:
            confusion_matrix_png(matrix, eval_set.class_names, title, out_dir / "confusion.png")
    return metrics
