"""Human-readable tables for the terminal (the CLI's and print_summary's output)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 1000  # no real table is this wide: to a pipe or a CI log, nothing is cut


def table_console(stderr: bool = False) -> Console:
    """The terminal's width on a terminal; elsewhere (a pipe, a file, a CI log) wide enough that
    tables keep full names and every column, where Rich would assume 80 columns and cut them."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=PIPE_WIDTH)


def print_data_summary(stats: dict, console: Console | None = None) -> None:
    console = console or table_console()
    spec = stats["preprocessing"]
    table = Table(title="Calibration data", show_header=False, title_justify="left")
    rows = [
        ("dataset type", stats["dataset_type"]),
        ("data dir", stats["data_dir"]),
        ("images from", f"{stats['image_dir']}" + (f"  (split {stats['split']})" if stats["split"] else "")),
        ("total images", f"{stats['total_images']} valid of {stats['total_files']} files"),
        ("samples", f"{stats['num_samples']} ({stats['strategy']}, seed {stats['seed']}"
                    + (f", only {stats['only_class']}" if stats["only_class"] else "") + ")"),
        ("batch size", stats["batch_size"]),
        ("num batches", stats["num_batches"]),
        ("input size", "x".join(map(str, stats["input_size"]))),
        ("batch shape", f"{tuple(stats['input_shape'])} float32 ({spec['layout']})"),
        ("preprocessing", f"{spec['resize']}, {spec['interpolation']}, {spec['color']}, "
                          f"{spec['channels']} ch, preset {spec['preset']} "
                          f"(mean {_fmt(spec['mean'])}, std {_fmt(spec['std'])})"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    if stats["class_counts"]:
        classes = Table(title="Classes", title_justify="left")
        classes.add_column("class")
        classes.add_column("images", justify="right")
        classes.add_column("sampled", justify="right")
        for name, count in stats["class_counts"].items():
            classes.add_row(name, str(count), str(stats["sample_class_counts"].get(name, 0)))
        console.print(classes)
    if stats["errors"]:
        skipped = Table(title=f"Skipped files ({len(stats['errors'])})", title_justify="left")
        skipped.add_column("file")
        skipped.add_column("reason")
        for error in stats["errors"][:SHOWN_SKIPPED]:
            skipped.add_row(error["path"], error["reason"])
        console.print(skipped)
        for line in skipped_summary(stats["errors"]):
            console.print(line, highlight=False, markup=False)


SHOWN_SKIPPED = 10  # a folder of 100,000 broken files is summarised, not listed


def skipped_summary(errors: list[dict]) -> list[str]:
    """Past the first few skipped files: how many more, and how many for each reason."""
    if len(errors) <= SHOWN_SKIPPED:
        return []
    counts: dict[str, int] = {}
    for error in errors:
        reason = error["reason"].replace(error["path"], "FILE")
        counts[reason] = counts.get(reason, 0) + 1
    lines = [f"... and {len(errors) - SHOWN_SKIPPED:,} more (all of them: --json); by reason:"]
    return lines + [f"  {n:>9,} x {reason}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def print_batch_stats(batches: list[dict], console: Console | None = None) -> None:
    console = console or table_console()
    table = Table(title="Test batches", title_justify="left")
    for column in ("batch", "shape", "dtype", "min", "max", "mean", "std"):
        table.add_column(column, justify="right")
    for b in batches:
        table.add_row(str(b["batch"]), str(tuple(b["shape"])), b["dtype"],
                      *(f"{b[k]:.4f}" for k in ("min", "max", "mean", "std")))
    console.print(table)


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
