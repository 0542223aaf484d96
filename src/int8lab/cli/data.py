"""`int8lab data …`: look at, export and package calibration data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from int8lab.cli.options import data_options
from int8lab.config import DataOptions
from int8lab.data.export import create_representative_dataset_module, export_npy
from int8lab.report.console import print_batch_stats, print_data_summary

data_app = typer.Typer(help="Calibration data: inspect, export as .npy, or as a Python module.",
                       no_args_is_help=True)
err = Console(stderr=True)


@data_app.command("inspect")
@data_options
def inspect_command(
    data_dir: Path = typer.Argument(..., help="Image folder, YOLO dataset or .npy file."),
    test_batches: int = typer.Option(3, "--test-batches", help="Batches to draw and describe."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    *,
    opts: DataOptions,
):
    """Summarise what calibration would use, and describe a few real batches."""
    generator = opts.generator(data_dir)
    stats = generator.get_statistics()
    batches = []
    for number, batch in zip(range(1, test_batches + 1), generator.generate_batches()):
        batches.append(_describe(number, batch))
    stats["test_batches"] = batches
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    print_data_summary(stats)
    print_batch_stats(batches)


@data_app.command("export-npy")
@data_options
def export_npy_command(
    data_dir: Path = typer.Argument(..., help="Image folder, YOLO dataset or .npy file."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
    filename: str = typer.Option(None, "--filename", help="File name (default: the shape, e.g. 100x224x224x3.npy)."),
    *,
    opts: DataOptions,
):
    """Write the calibration samples as one float32 .npy (for onnx2tf, ai-edge-quantizer, …)."""
    generator = opts.generator(data_dir)
    path = export_npy(generator, output, filename)
    _report_skipped(generator)
    typer.echo(f"wrote {path} ({len(generator.selected)} samples, float32)")


@data_app.command("module")
@data_options
def module_command(
    data_dir: Path = typer.Argument(..., help="Image folder, YOLO dataset or .npy file."),
    output: Path = typer.Option(Path("representative_dataset.py"), "-o", "--output",
                                help="Module file to write."),
    *,
    opts: DataOptions,
):
    """Write a standalone representative_dataset.py (numpy + Pillow only)."""
    generator = opts.generator(data_dir)
    path = create_representative_dataset_module(generator, output)
    _report_skipped(generator)
    typer.echo(f"wrote {path} ({len(generator.selected)} samples; "
               f"converter.representative_dataset = representative_data_gen)")


def _describe(number: int, batch: np.ndarray) -> dict:
    return {
        "batch": number,
        "shape": list(batch.shape),
        "dtype": str(batch.dtype),
        "min": float(batch.min()),
        "max": float(batch.max()),
        "mean": float(batch.mean()),
        "std": float(batch.std()),
    }


def _report_skipped(generator) -> None:
    from int8lab.report.console import SHOWN_SKIPPED, skipped_summary

    for skipped in generator.errors[:SHOWN_SKIPPED]:
        err.print(f"[yellow]skipped[/yellow] {escape(skipped.path)}: {escape(skipped.reason)}", highlight=False)
    for line in skipped_summary([s.as_dict() for s in generator.errors]):
        err.print(line, highlight=False, markup=False)
