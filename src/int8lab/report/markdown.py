"""Markdown reports generated from result dictionaries (no numbers typed by hand)."""

from __future__ import annotations

from int8lab.model.tflite_info import float_op_summary
from int8lab.runtime import Delegation
from int8lab.tasks.registry import task_of_results


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def validation_report(summary: dict) -> str:
    """The report of ``int8lab validate`` (validation only) or ``quantize`` (with the conversion,
    sizes and latency): every section is written from what ``summary`` holds."""
    v = summary["validation"]
    sizes, latency = summary.get("sizes"), summary.get("latency")
    conversion = summary.get("conversion") or {}
    calibration = conversion.get("calibration")
    lines = ["# int8lab quantization report", "",
             f"- quantized model: `{v['quantized_model']}`; reference: `{v['reference_model']}`"]
    if conversion.get("source_sha256"):
        lines.append(f"- source sha256 `{conversion['source_sha256'][:16]}…`, mode `{conversion['mode']}`")
    if summary.get("data_parts"):
        parts = summary["data_parts"]
        lines.append(f"- the data {parts.get('why', 'has no split folders')}: divided into {parts['calibration_images']} calibration "
                     f"and {parts['held_out_images']} held-out images ({parts['how']}; disjoint)")
    if calibration:
        lines.append(f"- calibrated on {calibration['count']} images of split `{calibration['split']}` "
                     f"({calibration['strategy']}, seed {calibration['seed']})")
    lines.append(f"- validated on {v['num_images']} images of split `{v['split']}` in `{v['data']}`")
    used = (v.get("preprocessing") or {}).get("spec") or conversion.get("preprocessing")
    if used:
        origin = _ORIGINS.get((v.get("preprocessing") or {}).get("origin"), "")
        lines.append(f"- preprocessing: {_spec_line(used)}{origin}")
    if conversion.get("preprocessing_detection"):
        from int8lab.preset_detection import evidence_table

        detection = conversion["preprocessing_detection"]
        lines += ["", f"Preprocessing detected (`--preset auto`, by {detection['by']} of the float model on "
                      f"{detection['samples']} calibration images):", "", evidence_table(detection)]
    task = task_of_results(v)
    lines += ["", "## Float vs quantized", "", "| metric | float (reference) | quantized |", "|---|---|---|"]
    lines += task.report_rows(v)
    if sizes:
        lines.append(f"| size (.tflite) | {sizes['fp32_tflite_bytes'] / 1024:.1f} KiB | "
                     f"{sizes['int8_tflite_bytes'] / 1024:.1f} KiB ({100 * sizes['int8_vs_fp32']:.1f}%) |")
    if latency:
        lines.append(f"| latency mean / p50 / p90 ({latency['fp32']['threads'] or 'default'} threads) | "
                     f"{_latency(latency['fp32'])} | {_latency(latency['int8'])} |")
    lines += [""] + task.report_notes(v)
    if summary.get("cpu"):
        lines.append(f"- latency measured on {summary['cpu']['model']} ({summary['cpu']['machine']}, "
                     f"{', '.join(summary['cpu']['features']) or 'no SIMD flags read'}): {summary['cpu']['int8']}")
    for name, runs in (summary.get("delegation") or {}).items():
        lines.append(f"- {name} in LiteRT: {Delegation.from_dict(runs).describe(each_op=True)}")
    rewrite = (conversion.get("task") or {}).get("box_rewrite")
    if rewrite:
        lines.append(f"- detector output: {rewrite}; the sidecar records `\"boxes\": \"normalized\"`")
    lines += target_lines(conversion.get("target") or {}, summary.get("mediapipe_cost"))
    tflite = conversion.get("tflite")
    if tflite:
        lines += ["", "## The quantized model", "",
                  _integer_line(tflite, conversion.get("range_corrections") or {}),
                  f"- input: {_io(tflite['inputs'][0])}",
                  "- output: " + "; ".join(_io(o) for o in tflite["outputs"]),
                  "- ops: " + ", ".join(f"{op} x{n}" for op, n in tflite["op_histogram"].items())]
    if summary.get("other_plan"):
        lines += plan_section(summary, task)
    if summary.get("profile"):
        lines += profile_section(summary["profile"])
    if conversion.get("range_corrections"):
        lines += corrections_section(conversion["range_corrections"])
    if summary.get("recovery"):
        lines += recovery_section(summary["recovery"], summary)
    lines += task.report_details(v)
    if summary.get("phases"):
        lines += ["", "## Time", "", "| phase | seconds |", "|---|---|"]
        lines += [f"| {p['phase']} | {p['seconds']:.1f} |" for p in summary["phases"]]
    warnings = [*(summary.get("warnings") or []), *(v.get("warnings") or [])]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    if v["skipped_files"]:
        lines += ["", "## Skipped validation files", ""] + [
            f"- `{s['path']}`: {s['reason']}" for s in v["skipped_files"]]
    return "\n".join(lines) + "\n"


def plan_section(summary: dict, task) -> list[str]:
    """The plan used beside the other one (int8lab.model.targets), as measured on this CPU."""
    conversion, other = summary["conversion"], summary["other_plan"]
    target = conversion.get("target") or {}
    lines = ["", "## Precision plan", "",
             f"Target `{target.get('name')}`, mode `{conversion['mode']}`: {target.get('why') or 'as --quantize gave'}."]
    if not other.get("measured"):
        return lines + ["", f"The `{other['target']}` plan was not measured: {other['why']}."]
    v, runs = summary["validation"], summary.get("delegation") or {}
    used_runs = Delegation.from_dict(runs["int8"]) if "int8" in runs else None
    other_runs = Delegation.from_dict(other["delegation"])
    names = other["metric_names"]
    lines += ["", f"| plan | mode | {' | '.join(names.values())} | size | latency mean | XNNPACK |",
              "|---|---|" + "---|" * len(names) + "---|---|---|"]
    rows = [(f"`{target.get('name')}` (this model)", conversion["mode"], {k: v.get(k) for k in names},
             summary["sizes"]["int8_tflite_bytes"], summary["latency"]["int8"], used_runs),
            (f"`{other['target']}` (`{other['model']}`)", other["mode"], other["metrics"], other["size_bytes"],
             other["latency"], other_runs)]
    for name, mode, metrics, size, latency, runs_on in rows:
        cells = " | ".join(_pct(metrics.get(k)) for k in names)
        lines.append(f"| {name} | {mode} | {cells} | {size / 1024:.1f} KiB | {latency['mean_ms']:.3f} ms | "
                     f"{runs_on.summary() if runs_on else 'n/a'} |")
    lines += ["", f"fp32 on the same CPU: {summary['latency']['fp32']['mean_ms']:.3f} ms."]
    return lines


def profile_line(profile: dict, top: int = 5) -> str:
    """One line: where the time goes (int8lab.op_profile), the op kinds that take the most."""
    kinds = ", ".join(f"{r['kind']} x{r['ops']} ({r['kernel']}) {r['ms']:.3f} ms {100 * r['share']:.0f}%"
                      for r in profile["top"][:top])
    return (f"ops timed alone sum to {profile['total_ms']:.3f} ms ({profile['builtin_ms']:.3f} ms on LiteRT's "
            f"built-in kernels): {kinds}")


def profile_section(profiles: dict) -> list[str]:
    """The report's side-by-side table of the op kinds that take the most time, per model."""
    names = list(profiles)
    keys = []
    for name in names:
        keys += [(r["kind"], r["kernel"]) for r in profiles[name]["top"][:8] if (r["kind"], r["kernel"]) not in keys]
    cell = {(name, r["kind"], r["kernel"]): r for name in names for r in profiles[name]["top"]}
    lines = ["", "## Where the time goes", "",
             "Each op timed alone on this CPU, fed what it meets in the whole model (the sum leaves out the "
             "hand-over between XNNPACK's partitions):", "",
             "| op kind | kernel | " + " | ".join(f"{n} ms (share)" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for kind, kernel in keys:
        values = [cell.get((n, kind, kernel)) for n in names]
        lines.append(f"| {kind} | {kernel} | " + " | ".join(
            f"{v['ms']:.3f} ({100 * v['share']:.0f}%), {v['ops']} op(s)" if v else "—" for v in values) + " |")
    lines.append("| **all ops** | | " + " | ".join(
        f"**{profiles[n]['total_ms']:.3f}** ({profiles[n]['builtin_ms']:.3f} built-in)" for n in names) + " |")
    return lines


def target_lines(target: dict, cost: dict | None) -> list[str]:
    """Which form the target runs, why, and for a MediaPipe detector what its stretch and NMS cost
    (Markdown list items)."""
    lines = [f"- target {target['name']}: {why}" for why in (target.get("why"), target.get("form")) if why]
    if cost:
        lines.append(f"- MediaPipe stretches the image and suppresses overlaps across classes (IoU 0.3): the float "
                     f"model's mAP50-95 on these images is {cost['mediapipe_float_map50_95']:.4f} so (int8: "
                     f"{cost['mediapipe_int8_map50_95']:.4f}), against {cost['letterbox_map50_95']:.4f} letterboxed "
                     f"with class-aware NMS as Ultralytics validates it")
    return lines


def _integer_line(tflite: dict, corrections: dict) -> str:
    """Whether every kernel is integer; the float ones by kind, and whether int8lab chose them."""
    if tflite["fully_integer"]:
        return "- fully integer: **yes**"
    summary = float_op_summary(tflite["float_ops"])
    head, logits = corrections.get("detector_head"), corrections.get("float_logits")
    if head and (head.get("dynamic_range") or {}).get("chosen"):
        return (f"- int8 weights, activations float (dynamic range: XNNPACK quantizes each convolution's input per "
                f"image): **{len(tflite['float_ops'])} float ops** ({summary}; chosen over static int8 on the "
                f"calibration images, see below; --target integer gives a fully integer model)")
    if head and head["float_tensors"]:
        return (f"- fully integer apart from the detector's decode tail: **{len(tflite['float_ops'])} float ops** "
                f"({summary}; {head['chosen']}, see below)")
    if logits or (corrections.get("float_for_xnnpack") or {}).get("kept"):
        return (f"- integer kernels apart from what XNNPACK runs faster in float: **{len(tflite['float_ops'])} "
                f"float op(s)** ({summary}; see below)")
    return f"- fully integer: **no** (float ops: {summary}: {', '.join(tflite['float_ops'])})"


def corrections_section(c: dict) -> list[str]:
    """The report's section of ``correction_lines``; none when nothing was changed."""
    lines = correction_lines(c)
    return ["", "## Range and bias corrections", "", *(f"- {line}" for line in lines)] if lines else []


def correction_lines(c: dict) -> list[str]:
    """What int8lab changed before ai-edge-quantizer quantized (int8lab.model.ranges and
    int8lab.model.bias_correction), and what each change measured, a sentence each."""
    lines = []
    if c.get("input_range"):
        calibrated = c.get("calibrated_input_range")
        lines.append(f"input range from the preprocessing: [{c['input_range'][0]:.4g}, {c['input_range'][1]:.4g}]"
                     + (f" (the calibration images alone gave [{calibrated[0]:.4g}, {calibrated[1]:.4g}])"
                        if calibrated else ""))
    logits = c.get("int16_output")
    if logits:
        lines.append(f"logits in int16 ({', '.join(logits['ops'])}, {logits['classes']} classes): int8 would tie "
                     f"{_pct(logits['int8_tie_rate'])} of the calibration images, "
                     f"{_pct(logits['unseen_tie_rate'])} on a range calibrated without them; XNNPACK takes no int16, "
                     f"so the op runs on LiteRT's built-in kernels (`--target cpu` keeps the logits "
                     f"apart in float with int8 weights, which XNNPACK runs)")
    logits = c.get("float_logits")
    if logits:
        lines.append(f"logits in float with int8 weights ({', '.join(logits['ops'])}, {logits['classes']} classes; the "
                     f"output is float): int8 would tie {_pct(logits['int8_tie_rate'])} of the calibration images, "
                     f"and int16 would leave the op to LiteRT's slower built-in kernels")
    refused = c.get("float_for_xnnpack")
    if refused:
        timing = (f"{refused['latency_ms']['float_where_refused']:.3f} ms with them in float, "
                  f"{refused['latency_ms']['int8']:.3f} ms all int8")
        lines.append(f"{refused['count']} {' / '.join(refused['ops'])} op(s) in float (the output is float): XNNPACK "
                     f"refused them in int8, which leaves each to LiteRT's built-in kernels and splits XNNPACK's "
                     f"partitions; {timing}")
    if c.get("rewritten_ops"):
        from int8lab.model.op_rewrite import REWRITTEN_AS

        lines.append("; ".join(f"{n} {kind} op(s) rewritten as {REWRITTEN_AS.get(kind, kind)}"
                               for kind, n in c["rewritten_ops"].items())
                     + ": the same values, which ai-edge-quantizer quantizes (it leaves the originals in float)")
    islands = c.get("int8_kernels") or {}
    if islands.get("integer"):
        lines.append("; ".join(f"{n} {kind}" for kind, n in islands["integer"].items())
                     + " op(s) that ai-edge-quantizer leaves in float run on LiteRT's integer kernel (int8 in, int8 "
                       "out, the calibrated scales)")
    if islands.get("beside_float"):
        lines.append(f"{len(islands['beside_float'])} activation(s) only float ops read stay float with them")
    if c.get("floored_bias_channels"):
        lines.append(f"{c['floored_bias_channels']} dead channel(s) given one weight so their bias fits int32")
    bias = c.get("bias_correction")
    if bias and "layers" in bias:
        verdict = "kept" if bias["kept"] else "not kept (it did not lower the error)"
        lines.append(f"bias correction of {bias['layers']} layers, {verdict}: {bias.get('measure', 'relative output error')} on "
                     f"{bias['ranking_images']} calibration images left out of it "
                     f"{bias['relative_error_before']:.3g} -> {bias['relative_error_after']:.3g}")
    elif bias:
        lines.append(f"no bias correction: {bias['reason']}")
    flat = c.get("flat_clipped")
    if flat:
        lines.append(f"{flat['tensors']} SiLU / hard-swish input range(s) clipped where the activation is flat "
                     f"(int8 step up to {flat['largest_step_reduction']:.2f}x finer)")
    grid = c.get("weight_grid")
    if grid and grid.get("channels"):
        lines.append(f"weights already on an int8 grid kept exactly: {grid['channels']} of {grid['of_channels']} "
                     f"channels in {grid['layers']} layers (the rest re-quantized)")
    head = c.get("detector_head")
    if head:
        tried = "; ".join(f"{k['name']} {k['score']:.4f} ({k['size_bytes'] / 1024:.0f} KiB, {k['latency_ms']:.2f} ms)"
                          for k in head["candidates"])
        lines.append(f"detector head: {head['chosen']} ({len(head['float_tensors'])} float ops), chosen on "
                     f"{head['ranking_images']} calibration images by {head['metric']}: {tried}")
        dynamic = head.get("dynamic_range")
        if dynamic:
            verdict = "chosen" if dynamic["chosen"] else "not chosen"
            lines.append(f"dynamic range (int8 weights; XNNPACK quantizes each convolution's input per image and "
                         f"writes float) {verdict}: {dynamic['score']:.4f} against static int8's "
                         f"{dynamic['static_score']:.4f}, at {dynamic['latency_ms'] / dynamic['static_latency_ms']:.2f}x "
                         f"its latency (taken up to {dynamic['allowance']:g}x)")
        shift = head.get("class_logit_shift")
        if shift and "delta" in shift:
            verdict = "kept" if shift["kept"] else "not kept"
            logits = shift.get("logits", "class")
            lines.append(f"{logits} logits re-centred by {shift['delta']:+.3f} ({verdict}): the mean gap between float "
                         f"and int8 score logits over {shift['confident_scores']} confident class scores of the calibration "
                         f"images; float detections kept there {_pct(shift['detections_kept_before'])} -> "
                         f"{_pct(shift['detections_kept_after'])}" + _misses_and_extras(shift))
        elif shift:
            lines.append(f"class logits not re-centred: {shift['reason']}")
        if head.get("class_branch_widened"):
            lines.append(f"class branch: the maxima of {head['class_branch_widened']} int8 ranges feeding only the class "
                         f"logits widened x{head['class_branch_margin']:g}, so detections brighter than any calibration "
                         f"image gave are not clipped below the confidence threshold")
    return lines


def _misses_and_extras(shift: dict) -> str:
    """What re-centring is judged by: float detections missed against int8 detections added."""
    if "missed_and_extra_before" not in shift:
        return ""
    (missed, extra), (missed_after, extra_after) = shift["missed_and_extra_before"], shift["missed_and_extra_after"]
    return (f"; float detections missed / int8 detections added {missed} / {extra} -> {missed_after} / "
            f"{extra_after} (kept where the two come no further apart: the shift corrects a bias)")


def recovery_section(r: dict, summary: dict) -> list[str]:
    """``--max-drop``: the budget, what it took, and what it cost."""
    lines = ["", "## Accuracy recovery (`--max-drop`, `--min-agreement`)", "",
             f"Budget: {r['budget_points']} points of {r['metric']} on the {r['ranking_images']} calibration-split "
             f"images (the ranking set; the test split stays held out). Full int8 lost "
             f"{r['drop_before']:.2f} points there."]
    check = r.get("min_agreement")
    if check:
        lines += ["", f"`--min-agreement {check['required']}`: top-1 agreement on the held-out images "
                      f"{_pct(check['held_out'])}, **{'met' if check['met'] else 'not met'}**."]
    if "before" not in r:
        return lines + ["", "Full int8 meets the budget: no layer is left in float."]
    v, sizes, latency = summary["validation"], summary["sizes"], summary["latency"]
    before = r["before"]
    lines += [f"Keeping {len(r['float_tensors'])} layer(s) in float ({r['float_ops']} of {r['ops']} kernels, "
              f"{100 * r['float_op_fraction']:.1f}%: {r['float_op_summary']}) brings it to {r['drop_after']:.2f} points.",
              "", "| on the test split | full int8 | with float fallback |", "|---|---|---|"]
    lines += [f"| {words} | {_pct(before[key])} | {_pct(v[key])} |"
              for key, words in task_of_results(v).RECOVERY_METRICS]
    lines += [f"| size | {before['size_bytes'] / 1024:.1f} KiB | {sizes['int8_tflite_bytes'] / 1024:.1f} KiB |",
              f"| latency (mean) | {before['latency']['mean_ms']:.3f} ms | {latency['int8']['mean_ms']:.3f} ms |",
              "", f"Layers left in float, in the order they were reverted ({r['order']}):", ""]
    lines += [f"{k}. `{name.split(';')[0]}` (drop after: {step['drop']:.2f})"
              for k, (name, step) in enumerate(zip(r["float_tensors"], r["steps"][1:]), 1)]
    return lines + ["", "Per-layer ranking: [layers.md](layers.md), [layers.csv](layers.csv), ![layers](layers.png)"]


_ORIGINS = {"recorded": " (as the model's sidecar records it)",
            "recorded, overridden": " (**not** what the model's sidecar records: see the warnings)",
            "flags": " (from the flags: the model has no sidecar)",
            "defaults": " (int8lab's defaults: the model has no sidecar; see the warnings)"}


def _spec_line(spec: dict) -> str:
    return (f"{spec['input_size'][0]}x{spec['input_size'][1]}x{spec['channels']} "
            f"{spec['layout'].upper()}, {spec['resize']}, {spec['color']}, preset {spec['preset']}")


def _latency(stats: dict) -> str:
    return f"{stats['mean_ms']:.3f} / {stats['p50_ms']:.3f} / {stats['p90_ms']:.3f} ms"


def _io(tensor: dict) -> str:
    return (f"{tensor['dtype']} {tensor['shape']}, scale {tensor['scale']:.6g}, "
            f"zero point {tensor['zero_point']}")
