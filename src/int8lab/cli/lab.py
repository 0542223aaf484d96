"""`int8lab bench` and `int8lab experiment`: the quantization lab."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from int8lab.cli.model import ARCH, BACKEND, BIAS_CORRECTION, ESTIMATOR, IO_LAYOUT
from int8lab.cli.options import data_options
from int8lab.config import DataOptions
from int8lab.report.console import table_console


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
    app.command("report")(report_command)
    app.command("experiment")(experiment_command)


def report_command(
    folder: Path = typer.Argument(..., help="A quantize or validate output folder (summary.json or validation.json)."),
):
    """Rebuild FOLDER/report.html (one file, images embedded) from the results saved there."""
    from int8lab.report.html import write_html_report

    if not (folder / "summary.json").exists() and not (folder / "validation.json").exists():
        raise typer.BadParameter(f"{folder} holds no summary.json or validation.json (int8lab quantize or validate "
                                 f"writes them)")
    typer.echo(f"wrote {write_html_report(folder)}")


def bench_command(
    models: list[Path] = typer.Argument(..., help=".tflite files; the first is the baseline of the ratios."),
    threads: int = typer.Option(None, "--threads", help="LiteRT interpreter threads (default: its own)."),
    runs: int = typer.Option(100, "--runs", help="Timed invokes per model."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed invokes first."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
):
    """Size, parameters and latency of several models, side by side in one process."""
    from int8lab.benchmark import bench_models
    from int8lab.cpu import cpu_info
    from int8lab.runtime import Delegation
    from int8lab.sidecar import recorded_spec

    rows = bench_models(models, threads, runs, warmup, [recorded_spec(m) for m in models])
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"LiteRT latency ({runs} runs after {warmup} warm-up, threads {threads or 'default'})",
                  title_justify="left")
    for column in ("model", "size KiB", "size ratio", "params", "input", "fully int",
                   "mean ms", "p50 ms", "p90 ms", "speed-up"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        lat = row["latency"]
        table.add_row(row["model"], f"{row['size_bytes'] / 1024:.1f}", f"{row['size_vs_first']:.3f}",
                      str(row["parameters"]), row["input_dtype"], "yes" if row["fully_integer"] else "no",
                      f"{lat['mean_ms']:.3f}", f"{lat['p50_ms']:.3f}", f"{lat['p90_ms']:.3f}",
                      f"{row['speedup_vs_first']:.2f}x")
    table_console().print(table)
    for row in rows:
        typer.echo(f"{row['model']}: {Delegation.from_dict(row['delegation']).describe(each_op=True)}")
    from int8lab.report.markdown import profile_line

    for row in rows:
        typer.echo(f"{row['model']}: {profile_line(row['profile'])}")
    cpu = cpu_info()
    typer.echo(f"cpu: {cpu.describe()}; {cpu.int8_meaning()}")


@data_options
def experiment_command(
    model: Path = typer.Argument(..., help=".keras/.h5, SavedModel folder, or float .tflite."),
    data: Path = typer.Option(..., "--data", help="DIR with the calibration and evaluation splits."),
    output: Path = typer.Option(..., "-o", "--output", help="Experiment folder (rerun to resume)."),
    calib_sizes: str = typer.Option("10,50,100,300", "--calib-sizes",
                                    help="Calibration sizes: counts, or fractions of the split (0.1,0.5)."),
    repeats: int = typer.Option(3, "--repeats", help="Seeds per calibration size."),
    imbalanced_class: str = typer.Option(None, "--imbalanced-class",
                                         help="Class of the single-class calibration (default: the first)."),
    calibration_split: str = typer.Option("val", "--calibration-split"),
    eval_split: str = typer.Option("test", "--eval-split"),
    strategies: str = typer.Option("random,stratified,diverse", "--strategies",
                                   help="Calibration strategies to sweep."),
    eval_workers: int = typer.Option(1, "--eval-workers",
                                     help="Processes that build and evaluate variants in parallel."),
    ray_address: str = typer.Option(None, "--ray-address", help="Build and evaluate each variant as a Ray task: "
                                    "local (start Ray here), auto, or a cluster address (the ray extra)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Where the decoded images and the float model's "
                                   "outputs are kept, on disk (default OUTPUT/cache); Ray workers must read it."),
    labels: Path = typer.Option(None, "--labels", help="Class names, one a line, in index order."),
    arch: str = ARCH,
    io_layout: str = IO_LAYOUT,
    backend: str = BACKEND,
    range_estimator: str = ESTIMATOR,
    bias_correction: bool = BIAS_CORRECTION,
    *,
    opts: DataOptions,
):
    """Native vs fp32/fp16/dynamic/int16x8 vs int8 at several calibration sizes, seeds and
    strategies, and int8 calibrated on one class: metrics.md, summary.md, plots."""
    from int8lab.experiment import ExperimentConfig, run_experiment
    from int8lab.report.experiment import write_report
    from int8lab.evalset import read_labels_file

    config = ExperimentConfig(calib_sizes, repeats, imbalanced_class, calibration_split, eval_split,
                              eval_workers, strategies=tuple(s.strip() for s in strategies.split(",") if s.strip()),
                              ray_address=ray_address, cache_dir=str(cache_dir) if cache_dir else None)
    from int8lab.model.source import ModelOptions

    model_options = ModelOptions(arch, io_layout, opts.input_size, opts.channels, backend, range_estimator,
                                 opts.trust_pickle, bias_correction)
    results = run_experiment(model, data, output, opts, config, read_labels_file(labels) if labels else None,
                             model_options)
    files = write_report(results, output)
    if results["resumed"]:
        typer.echo(f"resumed: {results['resumed']} variants were already built")
    typer.echo((output / "summary.md").read_text())
    typer.echo("wrote " + ", ".join(str(p) for p in files.values()))
