"""PNG figures for reports (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from int8lab.atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    _pyplot().close(fig)
    return path


def calibration_size_png(rows: list[dict], metric: str, path: Path) -> Path:
    """Mean metric (with the spread over seeds as error bars) against calibration size, per
    strategy, with the float models as reference lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for strategy, marker in (("random", "o"), ("stratified", "s"), ("diverse", "^")):
        points = sorted((r for r in rows if r["mode"] == "int8" and r["strategy"] == strategy),
                        key=lambda r: r["size"])
        if points:
            ax.errorbar([r["size"] for r in points], [100 * r[metric] for r in points],
                        yerr=[100 * r[f"{metric}_std"] for r in points], marker=marker, capsize=3,
                        label=f"int8, {strategy}")
    for row in rows:
        if row["strategy"] == "single-class":
            ax.errorbar([row["size"]], [100 * row[metric]], marker="x", linestyle="none", color="red",
                        markersize=9, label="int8, one class only")
        if row["group"] in ("native", "fp32"):
            ax.axhline(100 * row[metric], linestyle="--" if row["group"] == "native" else ":",
                       color="gray" if row["group"] == "native" else "black", label=row["group"])
    ax.set_xscale("log")
    ax.set_xlabel("calibration images")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title(f"{metric.replace('_', ' ')} vs calibration size")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def layer_errors_png(rows, threshold: float | None, path: Path, most: int = 40) -> Path:
    """Bar chart of RMSE / scale per quantized tensor (worst first), flagged ones in red; the
    suspect ``threshold`` as a line where one applies (the per-layer measurement)."""
    plt = _pyplot()
    shown = rows[:most]
    fig, ax = plt.subplots(figsize=(7.5, max(3.0, 0.22 * len(shown) + 1.2)))
    labels = [f"{r.op} {r.tensor.split(';')[0][-38:]}" for r in shown]
    ax.barh(range(len(shown)), [r.rmse_over_scale for r in shown],
            color=["tab:red" if r.flagged else "tab:blue" for r in shown])
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle=":", label=f"suspect above {threshold}")
        ax.legend(fontsize=8)
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("RMSE / scale")
    measured = "per-layer quantization error" if threshold is not None else "error up to each tensor"
    ax.set_title(f"{measured} ({len(shown)} of {len(rows)} tensors)")
    return _save(fig, path)


ANNOTATED_CLASSES = 30  # above this, a heat map without labels or counts (1000 classes: a million cells)
HEATMAP_CELLS = 200  # the heat map's cells a side: neighbouring classes summed beyond that


def confusion_matrix_png(matrix: np.ndarray, class_names: list[str], title: str, path: Path) -> Path:
    """Counts in every cell for a few dozen classes; above ANNOTATED_CLASSES a fixed-size heat map
    (the most confused pairs are a table in the report), so the figure costs the same at 1000."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    if len(class_names) > ANNOTATED_CLASSES:
        block = -(-len(matrix) // HEATMAP_CELLS)  # classes per cell, so that a single image shows
        cells = -(-len(matrix) // block)
        padded = np.zeros((cells * block, cells * block), np.int64)
        padded[:len(matrix), :len(matrix)] = matrix
        pooled = padded.reshape(cells, block, cells, block).sum(axis=(1, 3))
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        extent = (-0.5, cells * block - 0.5, cells * block - 0.5, -0.5)
        shown = ax.imshow(np.log1p(pooled), cmap="Blues", interpolation="nearest", extent=extent)
        fig.colorbar(shown, ax=ax, label=f"log(1 + images), {block} x {block} classes a cell")
        ax.set_xlabel(f"predicted (class index, {len(class_names)} classes)")
        ax.set_ylabel("true (class index)")
        ax.set_title(title)
        return _save(fig, path)
    size = max(4.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(col, row, str(value), ha="center", va="center", fontsize=8,
                color="white" if value > threshold else "black")
    return _save(fig, path)
