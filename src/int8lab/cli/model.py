"""`int8lab convert | validate | quantize | predict | snippet`: the model commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from int8lab.cli.options import data_options, preprocessing_options
from int8lab.config import DataOptions
from int8lab.errors import UsageError
from int8lab.model.convert import MODES
from int8lab.evalset import read_labels_file

err = Console(stderr=True, highlight=False)

LABELS = typer.Option(None, "--labels", help="Class names, one a line, in index order "
                                             "(default: the sorted class folders).")
DOUBLE_NORM = typer.Option(False, "--allow-double-normalisation",
                           help="Normalise the data although the model has Rescaling/Normalization layers.")
THREADS = typer.Option(None, "--threads", help="LiteRT interpreter threads (default: its own).")
ARCH = typer.Option(None, "--arch", help="PyTorch state dict: the factory of its network "
                                         "(package.module:function, file.py:function, torchvision:name).")
IO_LAYOUT = typer.Option(None, "--io-layout", help="nhwc: give an NCHW PyTorch/ONNX model NHWC input.")
BACKEND = typer.Option("converter", "--backend", help="Keras/SavedModel: converter (TF's) or aeq "
                                                     "(ai-edge-quantizer on the float .tflite).")
ONNX = typer.Option(False, "--onnx", help="PyTorch models: also write the full-precision model.onnx.")
ESTIMATOR = typer.Option("minmax", "--range-estimator", help="ai-edge-quantizer paths: minmax, or octav "
                                                             "(clipping-optimal weight ranges).")
BIAS_CORRECTION = typer.Option(True, "--bias-correction/--no-bias-correction",
                               help="ai-edge-quantizer paths: take the mean shift of int8 weights out of each "
                                    "bias, where the calibration images left out of it show a lower error.")


def load_source(model: Path, opts: DataOptions, arch=None, io_layout=None, backend="converter",
                range_estimator="minmax", bias_correction=True):
    """The user's model with what the flags say about it (int8lab.api.load_source)."""
    from int8lab.api import load_source as load

    return load(model, opts, arch, io_layout, backend, range_estimator, bias_correction)


def register(app: typer.Typer) -> None:
    for name, command in (("convert", convert_command), ("validate", validate_command),
                          ("quantize", quantize_command), ("predict", predict_command),
                          ("snippet", snippet_command), ("diagnose", diagnose_command),
                          ("inspect", inspect_command)):
        app.command(name)(command)


@data_options
def convert_command(
    model: Path = typer.Argument(..., help=".keras/.h5, SavedModel, float .tflite, .pt2/.pt/.pth or .onnx."),
    data: Path = typer.Option(None, "--data", help="Calibration images (needed by int8, uint8, "
                                                   "int8-float-io, int16x8)."),
    output: Path = typer.Option(..., "-o", "--output", help="The .tflite to write (and OUT.json)."),
    quantize: str = typer.Option("auto", "--quantize", help="auto (the --target's plan: int8-float-io for a "
                                 "CPU, int8 for --target integer) | " + " | ".join(MODES)),
    labels: Path = LABELS,
    allow_double_normalisation: bool = DOUBLE_NORM,
    arch: str = ARCH,
    io_layout: str = IO_LAYOUT,
    backend: str = BACKEND,
    onnx: bool = ONNX,
    range_estimator: str = ESTIMATOR,
    bias_correction: bool = BIAS_CORRECTION,
    *,
    opts: DataOptions,
):
    """Convert a float model to .tflite in one mode; verify and describe what came out."""
    from int8lab.pipeline import convert_job, export_onnx
    from int8lab.runtime import delegation

    source = load_source(model, opts, arch, io_layout, backend, range_estimator, bias_correction)
    result = convert_job(source, data, output, opts, quantize, labels, allow_double_normalisation)
    if onnx:
        typer.echo(f"wrote {export_onnx(source, output.with_name('model.onnx'))}")
    _print_warnings(result.warnings)
    _print_detection(result.metadata.get("preprocessing_detection"))
    info = result.info
    inp, out = info.inputs[0], info.outputs[0]
    typer.echo(f"wrote {result.path} ({info.size_bytes / 1024:.1f} KiB, mode {result.metadata['mode']}) and "
               f"{result.path}.json")
    typer.echo(f"  input  {inp.dtype} {inp.shape} scale {inp.scale:.6g} zero point {inp.zero_point}")
    typer.echo(f"  output {out.dtype} {out.shape} scale {out.scale:.6g} zero point {out.zero_point}")
    typer.echo("  ops: " + ", ".join(f"{op} x{n}" for op, n in info.op_histogram.items()))
    typer.echo(f"  runtime: {delegation(result.path.read_bytes()).describe()}")
    verdict = "yes" if info.fully_integer else f"no (float kernels: {info.float_op_summary()})"
    typer.echo(f"  fully integer: {verdict}")


@data_options
def validate_command(
    quantized: Path = typer.Argument(..., help="The quantized .tflite."),
    reference: Path = typer.Option(..., "--reference", help="The float model it came from."),
    data: Path = typer.Option(..., "--data", help="Held-out images (class folders give accuracy)."),
    output: Path = typer.Option(None, "-o", "--output", help="Report folder (default: beside the model)."),
    labels: Path = LABELS,
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON object."),
    arch: str = ARCH,
    io_layout: str = IO_LAYOUT,
    ray_address: str = typer.Option(None, "--ray-address", help="Score the images in Ray tasks whose tallies "
                                    "merge exactly: local (start Ray here), auto, or a cluster address."),
    shards: int = typer.Option(4, "--shards", help="With --ray-address: how many Ray tasks share the images."),
    *,
    opts: DataOptions,
):
    """Compare a quantized model with its float reference on held-out images, preprocessed as the
    model's sidecar records (flags that disagree are refused: --override-preprocessing)."""
    from int8lab.api import validate

    result = validate(quantized, reference, data, output, labels=labels, arch=arch, io_layout=io_layout,
                      ray_address=ray_address, shards=shards, options=opts)
    if as_json:
        typer.echo(json.dumps(result.summary, indent=2))
        return
    _print_validation(result.summary)
    typer.echo(f"report: {result.files['report']} ({result.files['report_html'].name} beside it)")


@data_options
def quantize_command(
    model: Path = typer.Argument(..., help=".keras/.h5, SavedModel, float .tflite, .pt2/.pt/.pth or .onnx."),
    data: Path = typer.Option(..., "--data", help="DIR with val/ (calibration) and test/ (validation)."),
    output: Path = typer.Option(Path("int8lab_out"), "-o", "--output", help="Report folder."),
    labels: Path = LABELS,
    eval_split: str = typer.Option("test", "--eval-split", help="Held-out split to validate on."),
    allow_double_normalisation: bool = DOUBLE_NORM,
    threads: int = THREADS,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    arch: str = ARCH,
    io_layout: str = IO_LAYOUT,
    backend: str = BACKEND,
    onnx: bool = ONNX,
    max_drop: float = typer.Option(None, "--max-drop", help="Accuracy budget in points (top-1 agreement "
                                   "without labels; detectors: mAP50-95 against the float model) on the "
                                   "calibration split: keep the worst layers in float until it holds."),
    min_agreement: float = typer.Option(None, "--min-agreement", help="Classifiers: the top-1 agreement with the "
                                        "float model (a fraction, e.g. 0.99) on the calibration split; keep the "
                                        "worst layers in float until it holds (with --max-drop: both)."),
    range_estimator: str = ESTIMATOR,
    bias_correction: bool = BIAS_CORRECTION,
    mode: str = typer.Option("auto", "--quantize", help="auto (the default: the --target's plan) | "
                             "int8-float-io (integer kernels, float I/O, what XNNPACK refuses in int8 in float "
                             "inside it: --target cpu's) | int8 (int8 I/O: --target integer's) | uint8 (uint8 I/O) "
                             "| int16x8."),
    *,
    opts: DataOptions,
):
    """The main job: int8 model, validated on held-out images, with size, latency and a report."""
    from int8lab.api import quantize

    summary = quantize(model, data, output, labels=labels, quantize=mode, max_drop=max_drop,
                       min_agreement=min_agreement, eval_split=eval_split, threads=threads, onnx=onnx,
                       allow_double_normalisation=allow_double_normalisation, arch=arch, io_layout=io_layout,
                       backend=backend, range_estimator=range_estimator, bias_correction=bias_correction,
                       options=opts).summary
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if summary["data_parts"]:
        parts = summary["data_parts"]
        typer.echo(f"{data} {parts['why']}: divided into {parts['calibration_images']} calibration and "
                   f"{parts['held_out_images']} held-out images ({parts['how']}; disjoint)")
    for warning in summary["warnings"]:
        err.print(f"[yellow]warning[/yellow] {escape(warning)}")
    _print_detection(summary["conversion"].get("preprocessing_detection"))
    from int8lab.report.markdown import correction_lines

    for line in correction_lines(summary["conversion"].get("range_corrections") or {}):
        typer.echo(f"correction: {line}")
    _print_validation(summary["validation"])
    from int8lab.report.markdown import target_lines

    for line in target_lines(summary["conversion"].get("target") or {}, summary.get("mediapipe_cost")):
        typer.echo(line[2:])
    sizes, latency = summary["sizes"], summary["latency"]
    typer.echo(f"size: fp32 {sizes['fp32_tflite_bytes'] / 1024:.1f} KiB -> int8 "
               f"{sizes['int8_tflite_bytes'] / 1024:.1f} KiB ({100 * sizes['int8_vs_fp32']:.1f}%)")
    typer.echo(f"latency (mean): fp32 {latency['fp32']['mean_ms']:.3f} ms, int8 "
               f"{latency['int8']['mean_ms']:.3f} ms on {summary['cpu']['model']} "
               f"({', '.join(summary['cpu']['features']) or 'no SIMD flags read'})")
    recovery = summary.get("recovery")
    if recovery and "before" in recovery:
        from int8lab.tasks.registry import task_of_results

        key, words = next((k, w) for k, w in task_of_results(summary["validation"]).RECOVERY_METRICS
                          if recovery["before"][k] is not None)
        typer.echo(f"float fallback: {len(recovery['float_tensors'])} layer(s) in float "
                   f"({100 * recovery['float_op_fraction']:.1f}% of kernels); {words} "
                   f"{100 * recovery['before'][key]:.2f}% -> {100 * summary['validation'][key]:.2f}%")
    elif recovery:
        typer.echo(f"the default int8 meets the budget ({recovery['metric']}, {recovery['budget_points']:.2f} "
                   f"points): no layer left in float")
    if recovery and recovery.get("min_agreement"):
        check = recovery["min_agreement"]
        typer.echo(f"--min-agreement {check['required']}: held-out top-1 agreement "
                   f"{100 * check['held_out']:.2f}% ({'met' if check['met'] else 'NOT met'}; the budget holds on "
                   f"the calibration split, which chose the layers)")
    typer.echo(f"wrote {output}/model_int8.tflite, model_int8.tflite.json, report.md, report.html")


@data_options
def diagnose_command(
    model: Path = typer.Argument(..., help="The float model: .keras/.h5, SavedModel, float .tflite, "
                                           ".pt2/.pt/.pth or .onnx."),
    data: Path = typer.Option(..., "--data", help="Calibration images (val/ when there is one)."),
    output: Path = typer.Option(Path("int8lab_diagnose"), "-o", "--output", help="Report folder."),
    arch: str = ARCH,
    io_layout: str = IO_LAYOUT,
    backend: str = BACKEND,
    range_estimator: str = ESTIMATOR,
    bias_correction: bool = BIAS_CORRECTION,
    *,
    opts: DataOptions,
):
    """Per-layer quantization error of full int8: a ranked table (Markdown, CSV) and a bar chart."""
    from int8lab.diagnose import short_name
    from int8lab.pipeline import diagnose_job

    source = load_source(model, opts, arch, io_layout, backend, range_estimator, bias_correction)
    rows = diagnose_job(source, data, output, opts)
    flagged = [r for r in rows if r.flagged]
    typer.echo(f"{len(rows)} quantized tensors, {len(flagged)} flagged (RMSE/scale): worst")
    for r in rows[:5]:
        typer.echo(f"  {r.rmse_over_scale:7.3f}  {r.op:16s} {short_name(r.tensor)}{'  <- flagged' if r.flagged else ''}")
    typer.echo(f"wrote {output}/layers.md, layers.csv, layers.png, model_int8.tflite, layers_node_data.json")
    typer.echo(f"on the graph: model-explorer {output}/model_int8.tflite --node_data_paths={output}/layers_node_data.json")


@preprocessing_options
def predict_command(
    model: Path = typer.Argument(..., help="A .tflite written by int8lab (its .json holds the preprocessing)."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    top_k: int = typer.Option(5, "--top-k", help="How many classes to show."),
    labels: Path = LABELS,
    threads: int = THREADS,
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    output: Path = typer.Option(None, "-o", "--output",
                                help="Detectors: draw the boxes and labels into DIR/IMAGE_boxes.png (nothing is "
                                     "written without it)."),
    *,
    opts: DataOptions,
):
    """Top-k classes, or a detector's boxes (printed and drawn), for image files, preprocessed
    exactly as calibration was (the sidecar's record; a model without one takes the flags)."""
    from int8lab.predict import predict_images

    preprocessing = _model_preprocessing(model, opts)
    results = predict_images(model, images, preprocessing.spec,
                             read_labels_file(labels) if labels else None, top_k, threads, output)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    for result in results:
        if "error" in result:
            err.print(f"[yellow]skipped[/yellow] {escape(result['image'])}: {escape(result['error'])}")
        elif "detections" in result:
            drawn = f", drawn in {result['drawn']}" if result.get("drawn") else ""
            typer.echo(f"{result['image']}: {len(result['detections'])} detections{drawn}")
            for d in result["detections"]:
                typer.echo(f"  {d['label']:12s} {d['score']:.3f}  box {d['box']}")
        else:
            typer.echo(result["image"] + "  " + "  ".join(f"{t['label']} {t['score']:.4f}" for t in result["top"]))


@preprocessing_options
def snippet_command(
    model: Path = typer.Argument(..., help="A .tflite written by int8lab."),
    output: Path = typer.Option(None, "-o", "--output", help="File to write (default: MODEL_infer.py beside it)."),
    *,
    opts: DataOptions,
):
    """Write a ready Python inference file (numpy, Pillow, ai-edge-litert) for the model, with the
    preprocessing its sidecar records (a model without one takes the flags)."""
    from int8lab.snippet import write_snippet

    output = output or model.with_name(f"{model.stem}_infer.py")
    path = write_snippet(model, output, _model_preprocessing(model, opts).spec)
    typer.echo(f"wrote {path}: python {path} IMAGE...")


def _model_preprocessing(model: Path, opts: DataOptions):
    """The model's preprocessing (int8lab.sidecar), its notes printed as warnings."""
    from int8lab.sidecar import resolve_preprocessing, tflite_input

    if not model.is_file():
        raise UsageError(f"{model} does not exist")
    preprocessing = resolve_preprocessing(model, opts, tflite_input(model))
    for note in preprocessing.notes:
        err.print(f"[yellow]warning[/yellow] {escape(note)}")
    return preprocessing


def _print_warnings(findings) -> None:
    for finding in findings:
        err.print(f"[yellow]warning[/yellow] {escape(f'[{finding.check}] {finding.message}')}")


def _print_detection(detection: dict | None) -> None:
    """What --preset auto picked, and the evidence: each candidate's score on the same images."""
    if not detection:
        return
    picked = detection["picked"]
    typer.echo(f"--preset auto picked {picked['preset']}/{picked['color']} (by {detection['by']}, "
               f"{detection['samples']} calibration images):")
    for c in detection["candidates"]:
        accuracy = "n/a" if c["accuracy"] is None else f"{100 * c['accuracy']:5.1f}%"
        mark = "  <- picked" if {"preset": c["preset"], "color": c["color"]} == picked else ""
        typer.echo(f"  {c['preset']:9s}{c['color']:4s} accuracy {accuracy}  confidence {c['confidence']:.3f}  "
                   f"variety {c['variety']:.2f}{mark}")


def _print_validation(v: dict) -> None:
    from int8lab.tasks.registry import task_of_results

    for warning in v.get("warnings") or []:
        err.print(f"[yellow]warning[/yellow] {escape(warning)}")
    typer.echo(f"validated on {v['num_images']} images (split {v['split']})")
    for line in task_of_results(v).console_lines(v):
        typer.echo(line)


def inspect_command(
    model: Path = typer.Argument(..., help="A .tflite file."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as one JSON object."),
):
    """What a .tflite holds: I/O types with scale and zero point, ops, the fully-integer verdict,
    its TFLite Metadata and labels, and int8lab's sidecar .json when there is one."""
    from int8lab.model.metadata import read_metadata
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.runtime import LiteRTModel, delegation

    LiteRTModel(model)  # a clear error for a file LiteRT cannot run
    content = model.read_bytes()
    info = inspect_tflite(content)
    runs_on = delegation(content)
    sidecar_path = Path(f"{model}.json")
    found = {"model": str(model), "tflite": info.as_dict(), "delegation": runs_on.as_dict(),
             "tflite_metadata": read_metadata(content),
             "sidecar": json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else None}
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    typer.echo(f"{model}: {info.size_bytes / 1024:.1f} KiB, {info.parameter_count:,} parameters, "
               + ("fully integer" if info.fully_integer else f"float kernels: {info.float_op_summary()}"))
    for kind, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            quant = f", scale {t.scale:.6g}, zero point {t.zero_point}" if t.scale else ""
            typer.echo(f"  {kind} {t.name}: {t.dtype} {t.shape}{quant}")
    typer.echo("  ops: " + ", ".join(f"{op} x{n}" for op, n in info.op_histogram.items()))
    typer.echo(f"  runtime: {runs_on.describe()}")
    typer.echo("  " + _metadata_line(found["tflite_metadata"]))
    if found["sidecar"]:
        spec = found["sidecar"].get("preprocessing") or {}
        typer.echo(f"  sidecar {sidecar_path.name}: mode {found['sidecar'].get('mode')}, preprocessing "
                   f"{spec.get('resize')} {spec.get('input_size')}, preset {spec.get('preset')}, "
                   f"{len(found['sidecar'].get('labels') or [])} labels")


def _metadata_line(found: dict | None) -> str:
    if found is None:
        return "TFLite metadata: none"
    if not found["readable"]:
        return f"TFLite metadata: present, not readable here ({found['why']})"
    meta = found["metadata"]
    image = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]
    units = image.get("process_units") or [{}]
    norm = units[0].get("options", {})
    files = ", ".join(f"{name} ({len(lines)} lines)" for name, lines in found["associated_files"].items())
    return (f"TFLite metadata: {meta.get('name')} {meta.get('version', '')}; input normalisation mean "
            f"{norm.get('mean')} std {norm.get('std')}; files: {files or 'none'}")
