"""Diverse calibration sets: k-center greedy selection on small thumbnails of the images.

For small calibration budgets a random draw can miss whole regions of the input distribution;
k-center greedy picks each next image as the one farthest from those already picked, so any
prefix of its order covers the data as evenly as it can. Whether that beats random at a given
size is measured (bench/bench_calibration_strategies.py), not assumed.
"""

from __future__ import annotations

import numpy as np

from int8lab import imageops
from int8lab.data.discovery import DatasetIndex
from int8lab.data.loader import ordered_map

THUMBNAIL = {"input_size": (16, 16), "resize": "stretch", "crop_pct": 1.0, "interpolation": "area",
             "color": "rgb", "channels": 1, "preset": "raw", "mean": (0.0,), "std": (1 / 255,),
             "layout": "nhwc", "pad_value": 114, "jpeg_draft": True}


def thumbnails(index: DatasetIndex, candidates: list[int], workers: int | None = None) -> np.ndarray:
    """16x16 grayscale pixels (0-255) per candidate; an undecodable file gets NaNs (never picked)."""
    array = np.load(index.array_path, mmap_mode="r", allow_pickle=False) if index.array_path else None

    def load(i: int) -> np.ndarray:
        if array is not None:
            sample = np.asarray(array[i])
            if sample.dtype != np.uint8:  # already preprocessed floats: compare them as they are
                return np.resize(sample.astype(np.float32).ravel(), 256)
            return imageops.array_to_tensor(sample, THUMBNAIL, index.array_layout).ravel()
        return imageops.load_tensor(index.files[i], THUMBNAIL).ravel()

    rows = []
    for _, result in ordered_map(load, candidates, workers):
        rows.append(np.full(256, np.nan, np.float32) if isinstance(result, imageops.ImageDecodeError) else result)
    return np.stack(rows) if rows else np.zeros((0, 256), np.float32)


def k_center_order(features: np.ndarray, seed: int, count: int) -> list[int]:
    """Row indices: a seeded random first row, then each farthest from all chosen so far, for
    ``count`` rows; the rest follow in seeded random order (they are drawn only to replace broken
    files)."""
    rng = np.random.default_rng(seed)
    valid = ~np.isnan(features).any(axis=1)
    rows = np.flatnonzero(valid)
    if rows.size == 0:
        return rng.permutation(len(features)).tolist()
    points = features[rows].astype(np.float64)
    first = int(rng.integers(len(rows)))
    chosen = [first]
    distance = np.linalg.norm(points - points[first], axis=1)
    for _ in range(min(count, len(rows)) - 1):
        nxt = int(distance.argmax())
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(points - points[nxt], axis=1))
    picked = [int(rows[k]) for k in chosen]
    taken = set(picked)
    return picked + [int(i) for i in rng.permutation(len(features)) if int(i) not in taken]
