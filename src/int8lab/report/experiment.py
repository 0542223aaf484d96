"""The lab's report: one metrics table, a plot, and a summary written from the numbers."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from int8lab.atomic import write_text_atomic
from int8lab.report.plots import calibration_size_png
from int8lab.tasks.registry import get_task

GROUP_LABELS = {"fp32": "TFLite fp32", "fp16": "TFLite fp16", "dynamic": "dynamic range (int8 weights)",
                "int16x8": "int16x8"}
NATIVE_LABELS = {"keras": "native (Keras, TF)", "saved_model": "native (SavedModel, TF)",
                 "torch": "native (PyTorch)", "onnx": "native (ONNX Runtime)", "tflite": "native (float .tflite)"}


def _task(results: dict):
    return get_task((results.get("task") or {}).get("name") or "classify")


def headline(results: dict, row: dict) -> tuple[str, str]:
    """(key, words) of the metric the summary and the plot follow: the task's labelled metric,
    else its agreement with the float model."""
    labelled, unlabelled = _task(results).HEADLINE
    return labelled if row.get(labelled[0]) is not None else unlabelled


def aggregate(results: dict) -> list[dict]:
    """One row per group (variants that differ only by seed): mean and std of each metric."""
    keys = [key for key, _ in _task(results).EXPERIMENT_COLUMNS] + ["mean_abs_output_error"]
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in [results["native"], *results["variants"]]:
        groups[row["group"]].append(row)
    rows = []
    for name, members in groups.items():
        first = members[0]
        row = {"group": name, "mode": first["variant"]["mode"], "runs": len(members),
               "source_kind": first.get("source_kind"),
               "strategy": first["variant"].get("strategy"), "size": first["variant"].get("size"),
               "size_bytes": first["size_bytes"], "parameters": first.get("parameters"),
               "fully_integer": first.get("fully_integer", False),
               "latency_ms": float(np.mean([m["latency"]["mean_ms"] for m in members]))}
        for key in keys:
            values = [m[key] for m in members if m.get(key) is not None]
            row[key] = float(np.mean(values)) if values else None
            row[f"{key}_std"] = float(np.std(values)) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def _label(row: dict) -> str:
    if row["group"] == "native":
        return NATIVE_LABELS.get(row["source_kind"], "native")
    if row["group"] in GROUP_LABELS:
        return GROUP_LABELS[row["group"]]
    if row["strategy"] == "single-class":
        return f"int8, one class only (n={row['size']})"
    return f"int8 {row['strategy']} n={row['size']}"


def _mean_std(row: dict, key: str, scale: float = 100, digits: int = 2) -> str:
    if row.get(key) is None:
        return "n/a"
    text = f"{scale * row[key]:.{digits}f}"
    return text + (f" ± {scale * row[key + '_std']:.{digits}f}" if row["runs"] > 1 else "")


def metrics_markdown(results: dict, rows: list[dict]) -> str:
    columns = _task(results).EXPERIMENT_COLUMNS
    lines = ["# Experiment metrics", "",
             f"`{results['model']}` on `{results['data']}`: calibration pool {results['calibration_pool']} "
             f"images (split `{results['calibration_split']}`), evaluation {results['eval_images']} images "
             f"(split `{results['eval_split']}`). Seeded variants: mean ± std over {results['repeats']} seeds.",
             "",
             "| variant | runs | " + " | ".join(header for _, header in columns)
             + " | size KiB | parameters | latency ms | fully integer |",
             "|---|---|" + "---|" * len(columns) + "---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {_label(row)} | {row['runs']} | " + " | ".join(_mean_std(row, key) for key, _ in columns)
            + f" | {row['size_bytes'] / 1024:.1f} | {row['parameters'] if row['parameters'] else 'n/a'} | "
            f"{row['latency_ms']:.3f} | {'yes' if row['fully_integer'] else 'no'} |")
    lines += _failed_lines(results)
    lines += ["", "Latency: mean of the LiteRT interpreter's invoke on one image (the native row: "
                  "the framework's own call), measured in one process, interleaved.",
              "", "![accuracy vs calibration size](accuracy_vs_calibration_size.png)", ""]
    return "\n".join(lines)


def _failed_lines(results: dict) -> list[str]:
    """The variants the back end refused to build, one line each with its first reason line."""
    failed = {}
    for failure in results.get("failed", []):
        reasons = [line.strip() for line in failure["error"].splitlines()[1:] if line.strip()]
        failed.setdefault(failure["group"], reasons[0] if reasons else failure["error"])
    if not failed:
        return []
    return ["", "Not built (the converter refused them):", ""] + \
        [f"- {GROUP_LABELS.get(group, group)}: {reason}" for group, reason in failed.items()]


def summary_markdown(results: dict, rows: list[dict]) -> str:
    """Answers the lab's questions in sentences generated from the numbers."""
    by_group = {r["group"]: r for r in rows}
    native, fp32 = by_group["native"], by_group.get("fp32")
    metric, what = headline(results, native)
    agreement, agreement_words = _task(results).AGREEMENT

    def pct(value):
        return f"{100 * value:.2f}%"

    int8_rows = [r for r in rows if r["mode"] == "int8"]
    sweep = [r for r in int8_rows if r["strategy"] in ("random", "stratified", "diverse")]
    lines = ["# Experiment summary", ""]
    if fp32:
        diff = 100 * (fp32[metric] - native[metric])
        lines.append(f"**fp32 vs native.** The TFLite fp32 model's {agreement_words} is "
                     f"{pct(fp32[agreement])} on the {results['eval_images']} images; its {what} is "
                     f"{pct(fp32[metric])} against {pct(native[metric])} ({diff:+.2f} points): the conversion "
                     f"itself {'changes nothing that matters' if abs(diff) < 0.25 else 'already costs accuracy'}.")
        lines.append("")
    if int8_rows and fp32:
        best = max(int8_rows, key=lambda r: r[metric])
        diff = 100 * (best[metric] - fp32[metric])
        size = 100 * best["size_bytes"] / fp32["size_bytes"]
        speed = fp32["latency_ms"] / best["latency_ms"]
        lines.append(f"**Best int8 vs fp32.** The best int8 variant ({_label(best)}) reaches {what} "
                     f"{pct(best[metric])} ({diff:+.2f} points against fp32) with {agreement_words} "
                     f"{pct(best[agreement])}, at {size:.1f}% of the fp32 size and {speed:.2f}x its speed.")
        lines.append("")
    for strategy in ("random", "stratified", "diverse"):
        trend = sorted((r for r in sweep if r["strategy"] == strategy), key=lambda r: r["size"])
        if len(trend) < 2:
            continue
        small, large = trend[0], trend[-1]
        change = 100 * (large[metric] - small[metric])
        stds = ", ".join(f"n={r['size']}: ±{100 * r[metric + '_std']:.2f}" for r in trend)
        verdict = ("more calibration data helps" if change > 0.25 else
                   "more calibration data hurts" if change < -0.25 else
                   "the calibration size barely matters here")
        lines.append(f"**Calibration size ({strategy}).** From {small['size']} to {large['size']} images "
                     f"the mean {what} goes from {pct(small[metric])} to {pct(large[metric])} "
                     f"({change:+.2f} points): {verdict}. Spread over seeds (points): {stds}.")
        lines.append("")
    single = next((r for r in int8_rows if r["strategy"] == "single-class"), None)
    if single:
        randoms = [r for r in sweep if r["strategy"] == "random"]
        # The random calibration of the nearest size (the larger on a tie) is the fair comparison.
        others = min(randoms, key=lambda r: (abs(r["size"] - single["size"]), -r["size"]), default=None)
        if others:
            diff = 100 * (single[metric] - others[metric])
            lines.append(f"**Single-class calibration.** Calibrated on `{results['single_class']}` only "
                         f"({single['size']} images), int8 reaches {what} {pct(single[metric])}, "
                         f"{diff:+.2f} points against {_label(others)}, with {agreement_words} "
                         f"{pct(single[agreement])}: "
                         + ("a calibration set that misses classes costs accuracy."
                            if diff < -0.25 else "on this model it costs little; the ranges it sets still cover "
                                                 "the other classes."))
            lines.append("")
    if fp32 and native.get("parameters"):
        int8 = next((r for r in int8_rows), None)
        if int8:
            lines.append(f"**Size.** {native['parameters']:,} parameters in the native model "
                         f"({fp32['parameters']:,} constants in the .tflite); fp32 .tflite "
                         f"{fp32['size_bytes'] / 1024:.1f} KiB, int8 {int8['size_bytes'] / 1024:.1f} KiB "
                         f"({100 * (1 - int8['size_bytes'] / fp32['size_bytes']):.1f}% smaller).")
            lines.append("")
    return "\n".join(lines + _failed_lines(results))


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """results.json, metrics.md, summary.md and the plot, each written atomically."""
    rows = aggregate(results)
    metric, _ = headline(results, rows[0])
    files = {"results": write_text_atomic(out_dir / "results.json",
                                          json.dumps({**results, "groups": rows}, indent=2) + "\n"),
             "metrics": write_text_atomic(out_dir / "metrics.md", metrics_markdown(results, rows)),
             "summary": write_text_atomic(out_dir / "summary.md", summary_markdown(results, rows)),
             "plot": calibration_size_png(rows, metric, out_dir / "accuracy_vs_calibration_size.png")}
    return files
