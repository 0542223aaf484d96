"""The jobs behind `int8lab convert`, `validate` and `quantize`, composed from the stages.

Side effects stay here and in the CLI: the stages (data, preprocess, model, runtime, evaluate)
are pure or nearly so.
"""

from __future__ import annotations

import copy

import hashlib
import json
import platform
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from int8lab import __version__
from int8lab.atomic import atomic_write, write_text_atomic
from int8lab.benchmark import measure_latency
from int8lab.checks import (
    Finding,
    check_batch,
    check_calibration_size,
    check_double_normalisation,
    check_interface,
    check_layout,
    check_overlap,
    raise_on_errors,
)
from int8lab.config import DataOptions
from int8lab.cpu import cpu_info
from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.errors import Int8labError, UsageError
from int8lab.model.convert import CALIBRATED_MODES, FULLY_INTEGER_MODES, INT8_ACTIVATION_MODES, convert
from int8lab.model.source import sha256_of
from int8lab.model.metadata import writer_missing
from int8lab.model.targets import AUTO, check_mediapipe_detector, for_target, mode_for_target, other_plan
from int8lab.model.tflite_info import TFLiteInfo, float_op_parts, inspect_tflite
from int8lab.preprocess import PreprocessSpec
from int8lab.examples import report_examples
from int8lab.report.html import write_html_report
from int8lab.report.markdown import validation_report
from int8lab.run import RunContext, resolve_run
from int8lab.sidecar import Preprocessing, read_sidecar, resolve_preprocessing, tflite_input, validation_split
from int8lab.progress import phase, phases, progress_enabled, track
from int8lab.runtime import LiteRTModel, delegation
from int8lab.tasks.registry import task_of_results
from int8lab.evalset import load_reference, read_labels_file, store_eval_set


class NotFullyIntegerError(Int8labError):
    """An integer mode produced a model that still runs float kernels."""


@dataclass
class ConvertResult:
    path: Path
    info: TFLiteInfo
    metadata: dict
    warnings: list[Finding] = field(default_factory=list)
    source: object = None  # the model the integer modes converted (a detector's may be rewritten)


def convert_job(model, data_dir, output: Path, opts: DataOptions, mode: str = AUTO,
                labels_file: Path | None = None, allow_double_normalisation: bool = False,
                held_out=None, detection: dict | None = None) -> ConvertResult:
    """Pre-flight, convert, verify, then write OUT.tflite and OUT.tflite.json atomically.

    ``model`` is a path, an already loaded source (int8lab.model.source) or a job's resolved
    int8lab.run.RunContext (``data_dir`` and ``opts`` are then its own). With ``--preset auto`` the
    preprocessing is detected first; ``detection`` is evidence already gathered. ``held_out``:
    the index of the images the model will be validated on (checked for overlap with the
    calibration draw, and recorded, so that ``int8lab validate`` takes the same split)."""
    run = resolve_run(model, data_dir, opts, detection=detection)
    source, opts, spec, data_dir, detection = run.source, run.opts, run.spec, run.data_dir, run.detection
    mode, target_why = mode_for_target(mode, opts.target, spec)
    if opts.target == "mediapipe":  # before converting: MediaPipe cannot run the model without it
        missing = "drop --no-metadata" if not opts.metadata else writer_missing()
        if missing:
            raise UsageError(f"--target mediapipe needs the TFLite metadata (NormalizationOptions, labels): {missing}")
    findings = check_layout(source.input, spec)
    if getattr(source, "float16", False):
        findings.append(Finding("warning", "float16",
                                "the ONNX model is float16 (an --half export): int8lab rebuilt it in float32 and "
                                "calibrates that; the float reference is ONNX Runtime on the float16 file"))
    if not allow_double_normalisation:
        findings += check_double_normalisation(source.normalising_layers(), spec)
    generator = first = None
    if mode in CALIBRATED_MODES:
        generator = run.calibration_generator()
        first = generator.first_batch()
        findings += check_batch(first, spec)
        if held_out is not None:
            chosen = [generator.index.describe(i) for i in generator.order]
            findings += check_overlap([str(Path(f).resolve()) for f in chosen],
                                      [str(Path(held_out.describe(i)).resolve()) for i in range(len(held_out))])
    warnings = raise_on_errors(findings)
    labels = _labels(labels_file, generator, data_dir)
    task, converted_source, task_findings = resolve_task(source, first, spec, opts, mode, labels)
    if opts.target == "mediapipe" and "layout" in task:
        check_mediapipe_detector(task, spec)
    _refuse_float_ops_before_calibration(converted_source, mode, opts, task)
    range_notes = {}
    with phase(f"quantizing ({mode})"):
        content = convert(converted_source, mode, generator, range_notes, head_score(task, opts))
    info = inspect_tflite(content)
    planned = set((range_notes.get("detector_head") or {}).get("float_tensors") or ())
    # A decode tail in float ends in a float output: no single int8 scale left to crush the scores.
    warnings += [f for f in task_findings if not (planned and f.check == "detector-output")]
    for kept in ("float_logits", "float_for_xnnpack"):
        planned |= set((range_notes.get(kept) or {}).get("tensors") or ())
    planned |= set((range_notes.get("int8_kernels") or {}).get("beside_float") or ())
    # A dynamic-range body (int8lab.model.detector_head) has float activations by plan.
    dynamic_range = ((range_notes.get("detector_head") or {}).get("dynamic_range") or {}).get("chosen")
    unplanned = [] if dynamic_range else [op for op in info.float_ops if float_op_parts(op)[1] not in planned]
    if mode in FULLY_INTEGER_MODES and unplanned:
        named = "; ".join(_in_model_terms(op, converted_source) for op in unplanned)
        if opts.integer_only or opts.head_precision == "int8":
            raise NotFullyIntegerError(f"mode {mode} left float ops in the model: {named}. {_KEEPS_THEM_FLOAT}")
        warnings.append(Finding("warning", "float-ops", f"{len(unplanned)} op(s) stay in float: the quantizer has "
                                f"no integer kernel for them ({named}); the rest of the model is integer "
                                f"(--integer-only refuses such a model)"))
    targeted, task = for_target(content, task, opts.target)
    if targeted is not content:
        content, info = targeted, inspect_tflite(targeted)
    warnings += check_interface(mode, info)
    if generator is not None:
        warnings += check_calibration_size(len(generator.selected))
    metadata = model_metadata(converted_source, mode, spec, info, generator, labels, warnings)
    metadata["preprocessing_detection"] = detection
    metadata["task"] = task
    metadata["range_corrections"] = range_notes or None
    metadata["target"] = {"name": opts.target, "why": target_why, "form": task.get("form")}
    if held_out is not None:
        metadata["held_out"] = {"data_dir": str(Path(held_out.root).resolve()), "split": held_out.split,
                                "count": len(held_out)}
    info = replace(info, size_bytes=write_model(output, content, metadata, opts.metadata))
    if opts.metadata and not metadata["tflite_metadata"]["written"]:
        warnings.append(Finding("warning", "metadata", metadata["tflite_metadata"]["why"]))
    return ConvertResult(output, info, metadata, warnings, converted_source)


_KEEPS_THEM_FLOAT = ("The quantizer has no integer kernel for them; without --integer-only (and --head-precision "
                     "int8) int8lab keeps them in float and says so")


def _refuse_float_ops_before_calibration(source, mode: str, opts: DataOptions, task: dict) -> None:
    """A request for every kernel integer that the model's own ops rule out, refused before the
    calibration and the searches after it. Only where the refusal is certain: every kernel asked
    integer (--head-precision int8), or --integer-only on a model with no decode tail that the
    default would keep in float; and an ai-edge-quantizer source, whose float .tflite is at hand."""
    from int8lab.model.aeq import ops_without_integer_recipe
    from int8lab.model.convert import uses_aeq

    every_kernel = opts.head_precision == "int8" or (opts.integer_only and "layout" not in task)
    if mode not in FULLY_INTEGER_MODES or not every_kernel or not uses_aeq(source) \
            or source.kind not in ("tflite", "torch", "onnx"):
        return
    missing = ops_without_integer_recipe(source.content)
    if missing:
        named = "; ".join(_in_model_terms(op, source) for op in missing)
        raise NotFullyIntegerError(f"mode {mode} would leave float ops in the model: {named}. {_KEEPS_THEM_FLOAT}")


def _in_model_terms(float_op: str, source) -> str:
    """"KIND (tensor)" as the model's author knows it: the ONNX node that wrote it, where known."""
    kind, tensor = float_op_parts(float_op)
    origin = getattr(source, "tensor_origin", lambda _: None)(tensor)
    return f"{kind} from ONNX {origin}" if origin else float_op


def head_score(task: dict, opts: DataOptions):
    """How a detector's precision choices are ranked (int8lab.tasks.detect), or None: not a
    detector, or ``--head-precision int8``."""
    from int8lab.tasks.detect import head_scorer

    if opts.head_precision not in ("auto", "int8"):
        raise UsageError(f"--head-precision must be auto or int8, got {opts.head_precision!r}")
    scorer = head_scorer(task) if opts.head_precision == "auto" else None
    return replace(scorer, dynamic_range=not opts.integer_only) if scorer is not None else None


AEQ_DETECTOR_MODES = ("int8", "int8-float-io", "int16x8")  # a Keras/SavedModel detector takes ai-edge-quantizer
BOX_SCORE_RATIO = 8.0  # boxes this many times wider in range than the scores crush them in one int8 scale


def resolve_task(source, sample: np.ndarray | None, spec: PreprocessSpec, opts: DataOptions, mode: str,
                 labels: list[str]):
    """The task (from ``--task`` or the float model's output on ``sample``, one calibration
    batch) as the sidecar records it, the source to convert (for an int8 detector whose box
    channels span a far wider range than its scores, the same model with boxes divided by the
    input size), and the warnings that decision leaves."""
    from int8lab.tasks.registry import infer_task

    if sample is None:
        return {"name": opts.task if opts.task != "auto" else None}, source, []
    outputs = np.asarray(source.predict(sample))
    name = infer_task(outputs.shape, opts.task)
    if name != "detect":
        return {"name": name}, source, []
    from int8lab.model.box_outputs import BoxRewriteError, channel_ranges, normalise_boxes
    from int8lab.tasks.detect import resolve_layout

    layout = resolve_layout(outputs.shape, spec.input_size, len(labels) or None)
    ranges = channel_ranges(outputs, layout.channel_axis)
    task = {"name": name, "names": labels, "output_ranges": {"boxes_max": ranges.box_max,
                                                             "scores_max": ranges.score_max},
            "box_rewrite": None}
    findings = []
    crushed = ranges.ratio > BOX_SCORE_RATIO and mode in INT8_ACTIVATION_MODES
    step = ranges.box_max / 255
    why = (f"box channels reach {ranges.box_max:.1f} and scores {ranges.score_max:.3f}: one int8 output scale "
           f"({step:.3g} per step) would round every score below {step / 2:.3g} to zero")
    if crushed and opts.normalise_boxes and hasattr(source, "module"):
        import torch

        try:
            module = normalise_boxes(source.module, torch.from_numpy(np.ascontiguousarray(sample[:1], np.float32)),
                                     spec.input_size, layout.channel_axis)
        except BoxRewriteError as exc:
            findings.append(Finding("warning", "detector-output", f"{why}; int8lab could not rewrite the graph ({exc})"))
        else:
            source = source.with_module(module)
            layout = layout.with_boxes("normalized")
            task["box_rewrite"] = (f"boxes divided by the input size before the final concatenation, as "
                                   f"Ultralytics' int8 exports do ({why})")
    elif crushed:
        reason = ("--keep-box-units was given" if not opts.normalise_boxes
                  else "int8lab rewrites the outputs of PyTorch and ONNX models only")
        findings.append(Finding("warning", "detector-output", f"{why}; {reason}"))
    if getattr(source, "backend", "") == "converter" and mode in AEQ_DETECTOR_MODES:
        source = copy.copy(source)
        source.backend = "aeq"
        task["backend"] = ("ai-edge-quantizer, whose per-op precision keeps a detector's decode tail in float "
                           "where that measures closer (TF's converter has none)")
    task["layout"] = layout.as_dict()
    return task, source, findings


def validate_job(quantized: Path, reference, data_dir, spec: PreprocessSpec | Preprocessing | None = None,
                 split: str | None = None, out_dir: Path | None = None, labels: list[str] | None = None,
                 dataset_type: str = "auto", progress: bool | None = None, task: str = "auto",
                 ray_address: str | None = None, shards: int | None = None, index=None) -> dict:
    """Compare ``quantized`` with ``reference`` on every image of the split, as its task scores
    it (the sidecar's task, ``task``, or the output shape), in one streaming pass or, with
    ``ray_address``, in ``shards`` Ray tasks whose tallies merge exactly; write validation.json,
    report.md and the task's figures into ``out_dir`` (default: beside the model).

    ``spec``: the preprocessing, or int8lab.sidecar's resolution of it (with its notes), or None
    for the one the model's sidecar records. ``split``: None takes the split quantize validated
    the model on, else test. ``index``: the split, already discovered."""
    from int8lab.tasks.registry import get_task, infer_task

    quantized = Path(quantized)
    if not isinstance(spec, Preprocessing):
        spec = (resolve_preprocessing(quantized, DataOptions(), tflite_input(quantized)) if spec is None
                else Preprocessing(spec, "given"))
    preprocessing, spec = spec, spec.spec
    if split is None and index is None:
        split = validation_split(quantized, data_dir, dataset_type)
    out_dir = Path(out_dir) if out_dir is not None else quantized.parent / f"{quantized.stem}_validation"
    reference_model = load_reference(reference) if not hasattr(reference, "predict") else reference
    quantized_model = LiteRTModel(quantized)
    sidecar = read_sidecar(quantized)
    recorded = (sidecar.get("task") or {}).get("name")
    name = infer_task(tuple(quantized_model.output["shape"]), recorded if task == "auto" and recorded else task)
    scorer = get_task(name)
    generator = RepresentativeDataGenerator(data_dir, dataset_type, num_samples=None, split=split, spec=spec,
                                            progress=progress, progress_label="validation images", index=index)
    split = generator.index.split
    plan = scorer.plan(generator.index, quantized_model, spec, labels, sidecar, data_dir)
    with phase("validation"):
        if ray_address:
            from int8lab.scale import ray_map, validate_shard

            parts = shards or 4
            shared = (name, str(quantized), str(reference_model.path), getattr(reference_model, "options", None),
                      str(data_dir), dataset_type, split, spec, plan, parts)
            state = scorer.merge(list(track(ray_map(validate_shard, range(parts), shared, ray_address), parts,
                                            "validation shards (Ray)", progress_enabled(progress))))
        else:
            state = scorer.accumulate(reference_model, quantized_model, generator, plan)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = scorer.finish(state, plan, out_dir)
    results.update(quantized_model=str(quantized), data=str(data_dir), split=split,
                   reference_model=str(getattr(reference, "path", reference)),
                   preprocessing=preprocessing.as_dict())
    results["warnings"] = [*preprocessing.notes, *(results.get("warnings") or [])]
    if isinstance(reference, (str, Path)) and str(reference).endswith(".tflite") and generator.index.array_path is None:
        with phase("report examples"):  # quantize shows its own, from the fp32 .tflite it writes
            results["examples"] = report_examples(Path(reference), quantized,
                                                  _paths(generator.index), spec, labels or sidecar.get("labels"))
    write_text_atomic(out_dir / "validation.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(out_dir / "report.md", validation_report({"validation": results, "conversion": sidecar}))
    write_html_report(out_dir)
    return results


def _paths(index) -> list[str]:
    return [index.describe(i) for i in range(len(index))]


def quantize_job(model, data_dir, out_dir: Path, opts: DataOptions,
                 labels_file: Path | None = None, eval_split: str = "test",
                 allow_double_normalisation: bool = False, threads: int | None = None,
                 onnx: bool = False, max_drop: float | None = None, mode: str = AUTO,
                 min_agreement: float | None = None) -> dict:
    """The main job: int8 model + validation on held-out images + size and latency + report.

    ``mode`` is one of the calibrated integer modes, or "auto": the plan of ``opts.target``
    (int8lab.model.targets); ``onnx`` also writes the full-precision PyTorch model as
    ``model.onnx`` beside it; ``max_drop`` (points) and a classifier's ``min_agreement`` (top-1
    agreement, a fraction) keep the worst layers in float until the budgets hold."""
    if mode not in (AUTO, *CALIBRATED_MODES):
        raise UsageError(f"int8lab quantize makes an integer model: --quantize takes {AUTO}, "
                         f"{', '.join(CALIBRATED_MODES)}, got {mode!r} (int8lab convert --quantize makes the others)")
    fallback = max_drop is not None or min_agreement is not None
    if fallback and mode not in (AUTO, "int8", "int8-float-io"):
        raise UsageError(f"--max-drop and --min-agreement rank layers in int8; they do not take --quantize {mode}")
    out_dir = Path(out_dir)
    with phases(not opts.quiet) as record:
        with phase("loading the model"):
            run = resolve_run(model, data_dir, opts, eval_split)
        source, opts, spec, eval_split = run.source, run.opts, run.spec, run.eval_split
        labels = read_labels_file(labels_file) if labels_file else None
        held_out = run.held_out
        started = time.monotonic()
        converted = convert_job(run, data_dir, out_dir / "model_int8.tflite", opts, mode, labels_file,
                                allow_double_normalisation, held_out)
        conversion_seconds = time.monotonic() - started
        task = converted.metadata["task"]["name"]
        if onnx:
            export_onnx(source, out_dir / "model.onnx")
        recovery = None
        if fallback:
            with phase("float fallback (--max-drop / --min-agreement)"):
                converted, recovery = recover_job(run, converted, max_drop, labels, out_dir, min_agreement)
        with phase("float model"):
            float_content = convert(source, "none")
            float_metadata = model_metadata(source, "none", spec, inspect_tflite(float_content), None,
                                            converted.metadata["labels"], [])
            float_metadata["task"] = float_task(converted.metadata["task"])
            float_size = write_model(out_dir / "model_fp32.tflite", float_content, float_metadata, opts.metadata)
        results = validate_job(converted.path, source, data_dir, spec, eval_split, out_dir, labels,
                               opts.dataset_type, not opts.quiet, task, index=held_out)
        sizes = {"fp32_tflite_bytes": float_size, "int8_tflite_bytes": converted.info.size_bytes}
        sizes["int8_vs_fp32"] = sizes["int8_tflite_bytes"] / sizes["fp32_tflite_bytes"]
        with phase("latency"):
            latency = {"fp32": measure_latency(LiteRTModel(float_content, threads)),
                       "int8": measure_latency(LiteRTModel(converted.path, threads))}
            runs_on = {"fp32": delegation(float_content, threads),
                       "int8": delegation(converted.path.read_bytes(), threads)}
        with phase("where the time goes (each op timed)"):
            profile = where_time_goes({"fp32": float_content, "int8": converted.path.read_bytes()}, spec, threads)
        cpu = cpu_info()
        summary = {"model": str(source.path), "data": str(data_dir), "cpu": cpu.as_dict(),
                   "data_parts": data_parts(run) if run.parts else None,
                   "validation": results,
                   "conversion": converted.metadata, "sizes": sizes, "latency": latency,
                   "delegation": {name: d.as_dict() for name, d in runs_on.items()}, "profile": profile,
                   "warnings": [f.message for f in converted.warnings] + slower_int8(latency, cpu, runs_on["int8"],
                                                                                 opts.target)}
        if compare_plans(opts, conversion_seconds, mode, fallback):
            with phase(f"the {other_plan(opts.target)} plan, for comparison"):
                summary["other_plan"] = other_plan_job(run, out_dir, labels_file, allow_double_normalisation,
                                                       labels, threads)
                other = summary["other_plan"]
                summary["profile"][f"{other['target']} plan"] = where_time_goes(
                    {"other": Path(other["model"]).read_bytes()}, spec, threads)["other"]
        elif other_plan(opts.target):
            summary["other_plan"] = {"target": other_plan(opts.target), "measured": False,
                                     "why": plan_skipped(opts, conversion_seconds, mode, fallback)}
        if converted.metadata["task"].get("form") and results.get("labelled"):
            with phase("what MediaPipe's way costs"):
                summary["mediapipe_cost"] = mediapipe_cost(out_dir / "model_fp32.tflite", run, labels, results)
        if recovery is not None:
            summary["recovery"] = recovery_summary(recovery, out_dir, run, labels, threads)
            if min_agreement is not None:
                agreement = results.get("top1_agreement")
                summary["recovery"]["min_agreement"] = {"required": min_agreement, "held_out": agreement,
                                                        "met": agreement is not None and agreement >= min_agreement}
        if held_out.array_path is None:
            with phase("report examples"):
                summary["examples"] = report_examples(out_dir / "model_fp32.tflite", converted.path, _paths(held_out),
                                                      spec, converted.metadata["labels"])
    summary["phases"] = record.as_list()
    write_text_atomic(out_dir / "report.md", validation_report(summary))
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_html_report(out_dir)
    return summary


def where_time_goes(models: dict[str, bytes], spec: PreprocessSpec, threads) -> dict:
    """Each model's op profile (int8lab.op_profile) on the same latency sample."""
    from int8lab.benchmark import latency_sample
    from int8lab.op_profile import op_profile, profile_summary

    return {name: profile_summary(op_profile(content, latency_sample(LiteRTModel(content, threads), spec), threads))
            for name, content in models.items()}


PLAN_COMPARISON_SECONDS = 90  # --compare-plans auto: what one more conversion may cost


def compare_plans(opts: DataOptions, conversion_seconds: float, mode: str, fallback: bool) -> bool:
    """Whether quantize also makes the other target's plan (int8lab.model.targets.other_plan)."""
    if opts.compare_plans not in ("auto", "on", "off"):
        raise UsageError(f"--compare-plans must be auto, on or off, got {opts.compare_plans!r}")
    return plan_skipped(opts, conversion_seconds, mode, fallback) is None


def plan_skipped(opts: DataOptions, conversion_seconds: float, mode: str, fallback: bool) -> str | None:
    """Why the other plan is not measured, or None."""
    if other_plan(opts.target) is None:
        return f"--target {opts.target} has no other plan"
    if mode != AUTO or fallback:
        return "--quantize, --max-drop or --min-agreement chose the model (the plans are compared with the default)"
    if opts.compare_plans == "off":
        return "--compare-plans off"
    if opts.compare_plans == "auto" and conversion_seconds > PLAN_COMPARISON_SECONDS:
        return (f"the conversion took {conversion_seconds:.0f} s (more than {PLAN_COMPARISON_SECONDS} s): "
                f"--compare-plans on measures it")
    return None


def other_plan_job(run: RunContext, out_dir: Path, labels_file, allow_double_normalisation: bool,
                   labels, threads) -> dict:
    """The other target's model (OUT/plan_TARGET/model_int8.tflite), validated on the same
    held-out images and timed on this CPU: what choosing it instead would cost."""
    target = other_plan(run.opts.target)
    folder = out_dir / f"plan_{target}"
    opts = replace(run.opts, target=target)
    other = copy.copy(run)  # the split indexes it walked stay with it
    object.__setattr__(other, "opts", opts)
    converted = convert_job(other, run.data_dir, folder / "model_int8.tflite", opts, AUTO,
                            labels_file, allow_double_normalisation, run.held_out)
    results = validate_job(converted.path, run.source, run.data_dir, run.spec, run.eval_split, folder, labels,
                           opts.dataset_type, not opts.quiet, converted.metadata["task"]["name"], index=run.held_out)
    metrics = task_of_results(results).RECOVERY_METRICS
    return {"target": target, "measured": True, "mode": converted.metadata["mode"], "model": str(converted.path),
            "metrics": {key: results.get(key) for key, _ in metrics}, "metric_names": dict(metrics),
            "size_bytes": converted.info.size_bytes,
            "latency": measure_latency(LiteRTModel(converted.path, threads)),
            "delegation": delegation(converted.path.read_bytes(), threads).as_dict(),
            "fully_integer": converted.info.as_dict()["fully_integer"]}


def mediapipe_cost(float_model: Path, run: RunContext, labels, results: dict) -> dict:
    """What MediaPipe's way of running a detector costs on the user's labelled images: the float
    model letterboxed with Ultralytics' class-aware NMS, against stretched with MediaPipe's
    class-agnostic NMS (the validation just run)."""
    with tempfile.TemporaryDirectory(prefix="int8lab-letterbox-") as scratch:
        letterbox = validate_job(float_model, run.source, run.data_dir, replace(run.spec, resize="letterbox"),
                                 run.eval_split, Path(scratch), labels, run.opts.dataset_type, not run.opts.quiet,
                                 "detect", index=run.held_out)
    return {"letterbox_map50_95": letterbox["map50_95_reference"], "letterbox_map50": letterbox["map50_reference"],
            "mediapipe_float_map50_95": results["map50_95_reference"], "mediapipe_float_map50": results["map50_reference"],
            "mediapipe_int8_map50_95": results["map50_95"]}


def slower_int8(latency: dict, cpu, int8_delegation, target: str = "cpu") -> list[str]:
    """A warning when the int8 model is slower than the fp32 one on this CPU, with the likely
    causes: the CPU's int8 instructions, and the ops XNNPACK leaves to the built-in kernels."""
    fp32, int8 = latency["fp32"]["mean_ms"], latency["int8"]["mean_ms"]
    if int8 <= fp32:
        return []
    remedy = ("; for a CPU, --target cpu runs in float, inside XNNPACK, what it refuses in int8"
              if int8_delegation.fallback and target != "cpu" else "")
    return [f"the int8 model is slower than the fp32 one on this CPU ({int8:.3f} vs {fp32:.3f} ms; "
            f"{cpu.describe()}): {cpu.int8_meaning()}; {int8_delegation.describe()}{remedy}"]


def data_parts(run: RunContext) -> dict:
    """How a folder without splits (or a COCO/VOC set without a test split) was divided, for the
    console and the report."""
    labelled_set = run.calibration.dataset_type in ("coco", "voc")
    return {"calibration_images": len(run.calibration), "held_out_images": len(run.held_out),
            "why": "has no test split" if labelled_set else "has no split folders",
            "how": "seeded, stratified by class folder" if run.calibration.class_names else "seeded"}


def recover_job(run: RunContext, converted: ConvertResult, max_drop: float | None, labels: list[str] | None,
                out_dir: Path, min_agreement: float | None = None):
    """``--max-drop``: rank the layers, and if full int8 misses the budget on the calibration
    split, replace model_int8.tflite by the model with the fewest worst layers in float (the
    full-int8 model stays as model_int8_full.tflite). Writes the layer ranking too."""
    from int8lab.diagnose import recover_accuracy

    source, data_dir, spec, opts = run.source, run.data_dir, run.spec, run.opts
    task = source_task(converted.metadata["task"])
    calibration = run.calibration_generator()
    with tempfile.TemporaryDirectory(prefix="int8lab-ranking-") as scratch:  # the whole split: on disk
        ranking = store_eval_set(Path(scratch) / "ranking.npy", data_dir, spec, run.calibration_split, labels,
                                 opts.dataset_type, not opts.quiet)
        recovery = recover_accuracy(source, calibration, ranking, max_drop, not opts.quiet,
                                    task, spec, converted.source, converted.metadata["mode"], min_agreement)
    write_layer_report(recovery.ranked, out_dir, f"Per-layer quantization error: {source.path.name}",
                       recovery.method)
    if not recovery.needed:
        return converted, recovery
    full = out_dir / "model_int8_full.tflite"
    converted.path.replace(full)
    Path(f"{converted.path}.json").replace(f"{full}.json")
    content, _ = for_target(recovery.content, task, opts.target)
    info = inspect_tflite(content)
    metadata = {**converted.metadata, "tflite": info.as_dict(), "fallback": recovery.as_dict()}
    info = replace(info, size_bytes=write_model(converted.path, content, metadata, opts.metadata))
    return ConvertResult(converted.path, info, metadata, converted.warnings, converted.source), recovery


def recovery_summary(recovery, out_dir: Path, run: RunContext, labels, threads) -> dict:
    """Before/after figures of the fallback on the held-out split, for the report."""
    summary = recovery.as_dict()
    if not recovery.needed:
        return summary
    full = out_dir / "model_int8_full.tflite"
    before = validate_job(full, run.source, run.data_dir, run.spec, run.eval_split, out_dir / "full_int8", labels,
                          run.opts.dataset_type, not run.opts.quiet, index=run.held_out)
    after_info, before_info = inspect_tflite((out_dir / "model_int8.tflite").read_bytes()), inspect_tflite(full.read_bytes())
    kernels = sum(n for op, n in after_info.op_histogram.items() if op not in ("QUANTIZE", "DEQUANTIZE"))
    summary.update({
        "before": {**{key: before[key] for key, _ in task_of_results(before).RECOVERY_METRICS},
                   "size_bytes": before_info.size_bytes,
                   "latency": measure_latency(LiteRTModel(full, threads))},
        "float_ops": len(after_info.float_ops), "ops": kernels,
        "float_op_fraction": len(after_info.float_ops) / kernels if kernels else 0.0,
        "float_op_summary": after_info.float_op_summary()})
    return summary


def write_layer_report(rows, out_dir: Path, title: str, method: str | None = None) -> dict[str, Path]:
    """layers.md, layers.csv and layers.png: the per-layer error ranking."""
    from int8lab.diagnose import PER_LAYER, SUSPECT_RMSE_OVER_SCALE, errors_csv, errors_markdown
    from int8lab.report.plots import layer_errors_png

    markdown = errors_markdown(rows, title, method or PER_LAYER)
    return {"markdown": write_text_atomic(out_dir / "layers.md", markdown),
            "csv": write_text_atomic(out_dir / "layers.csv", errors_csv(rows)),
            "png": layer_errors_png(rows, SUSPECT_RMSE_OVER_SCALE if method in (None, PER_LAYER) else None,
                                    out_dir / "layers.png")}


def diagnose_job(model, data_dir, out_dir: Path, opts: DataOptions) -> list:
    """``int8lab diagnose``: the per-layer error of full int8, calibrated and (for a detector)
    rewritten like convert_job (TF's QuantizationDebugger on the converter path, float vs int8
    .tflite side by side on the ai-edge-quantizer path)."""
    from int8lab.diagnose import node_data, rank_layers

    run = resolve_run(model, data_dir, opts)
    source, opts, spec = run.source, run.opts, run.spec
    raise_on_errors(check_layout(source.input, spec))
    calibration = run.calibration_generator()
    task, int8_source, _ = resolve_task(source, calibration.first_batch(), spec, opts, "int8",
                                        _labels(None, None, data_dir))
    rows, requantize, method = rank_layers(int8_source, calibration, head_score(task, opts))
    title = f"Per-layer quantization error: {source.path.name}"
    write_layer_report(rows, Path(out_dir), title, method)
    # The full int8 model and Model Explorer's overlay of the ranking, to see the errors on the graph.
    int8 = requantize([])
    with atomic_write(Path(out_dir) / "model_int8.tflite") as handle:
        handle.write(int8)
    names = {t["name"] for t in LiteRTModel(int8).interpreter.get_tensor_details()}
    write_text_atomic(Path(out_dir) / "layers_node_data.json",
                      json.dumps(node_data(rows, title, names), indent=1) + "\n")
    return rows


def export_onnx(source, path: Path) -> Path:
    """model.onnx beside the .tflite, written atomically; PyTorch sources only."""
    if source.kind != "torch":
        raise UsageError("--onnx exports PyTorch models; this model is not one")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        source.export_onnx(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def model_metadata(source, mode: str, spec: PreprocessSpec, info: TFLiteInfo,
                   generator, labels: list[str], warnings: list[Finding]) -> dict:
    from importlib.metadata import version

    import tensorflow as tf

    calibration = None
    if generator is not None:
        files = [generator.index.describe(i) for i in generator.selected]
        calibration = {
            "count": len(files), "seed": generator.seed, "strategy": generator.strategy,
            "split": generator.index.split, "data_dir": str(generator.index.root),
            "files_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest(),
            "sample": files[:12],  # what the HTML report shows of them
            "skipped": [e.as_dict() for e in generator.errors],
        }
    return {
        "int8lab_version": __version__,
        "source_model": str(source.path), "source_sha256": sha256_of(source.path),
        "mode": mode, "preprocessing": spec.as_dict(), "labels": labels,
        "calibration": calibration, "tflite": info.as_dict(),
        "backend": _backend(source),
        "versions": {"tensorflow": tf.__version__, "ai_edge_litert": version("ai-edge-litert"),
                     "python": platform.python_version(), **_optional_versions(source)},
        "warnings": [f.message for f in warnings],
    }


def write_model(path: Path, content: bytes, metadata: dict, embed_metadata: bool = True) -> int:
    """The model (with TFLite Metadata from its sidecar, when the writer is installed), then its
    sidecar; each appears whole or not at all. Returns the size written."""
    from int8lab.model.metadata import with_metadata, writer_missing

    if embed_metadata:
        why = writer_missing()
        if why is None:
            name = f"{Path(metadata.get('source_model') or path).stem} ({metadata.get('mode')})"
            content = with_metadata(content, metadata, name)
            if "tflite" in metadata:
                metadata["tflite"]["size_bytes"] = len(content)
        metadata["tflite_metadata"] = {"written": why is None, "why": why}
    with atomic_write(path) as handle:
        handle.write(content)
    write_text_atomic(Path(f"{path}.json"), json.dumps(metadata, indent=2) + "\n")
    return len(content)


def source_task(task: dict) -> dict:
    """The task as the converted model had it before its target's form (for_target)."""
    if "source_layout" not in task:
        return task
    rest = {k: v for k, v in task.items() if k not in ("source_layout", "form")}
    return {**rest, "layout": task["source_layout"]}


def float_task(task: dict) -> dict:
    """The sidecar task of the unmodified float model: a detector's boxes stay in pixels."""
    task = source_task(task)
    if "layout" not in task:
        return task
    return {**task, "layout": {**task["layout"], "boxes": "pixels"}, "box_rewrite": None}


def _backend(source) -> str:
    if source.kind in ("keras", "saved_model") and source.backend == "converter":
        return "tensorflow-converter"
    front = {"torch": "litert-torch + ", "onnx": "onnx -> torch -> litert-torch + ",
             "keras": "tensorflow-converter (float) + ", "saved_model": "tensorflow-converter (float) + "}
    front = front.get(source.kind, "")
    return front + "ai-edge-quantizer"


def _optional_versions(source) -> dict:
    from importlib.metadata import version

    names = ["ai-edge-quantizer"] + (["torch", "litert-torch"] if source.kind in ("torch", "onnx") else []) \
        + (["onnx"] if source.kind == "onnx" else [])
    return {name.replace("-", "_"): version(name) for name in names}


def _labels(labels_file, generator, data_dir=None) -> list[str]:
    """--labels, else the class folders, else a YOLO data.yaml's names."""
    from int8lab.data.annotations import dataset_names

    if labels_file:
        return read_labels_file(labels_file)
    if generator is not None and generator.index.class_names:
        return list(generator.index.class_names)
    return dataset_names(data_dir) if data_dir is not None else []
