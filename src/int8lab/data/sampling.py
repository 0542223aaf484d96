"""Seeded, reproducible orderings of the candidate sources.

A strategy returns *every* candidate in the order it is drawn, not just the first N: a file that
turns out to be corrupt is skipped and the next one in the order takes its place, so the same
seed and inputs always give the same tensors, whatever breaks.
"""

from __future__ import annotations

import numpy as np

from int8lab.data.discovery import UNLABELLED, DatasetIndex
from int8lab.errors import UsageError

STRATEGIES = ("random", "stratified", "diverse")


def sampling_order(
    index: DatasetIndex, strategy: str = "random", seed: int = 42, only_class: str | None = None,
    count: int | None = None, workers: int | None = None,
) -> list[int]:
    """Source indices in draw order, without replacement.

    ``random``: one seeded permutation. ``stratified``: each class shuffled, then taken in rounds
    of one per class (class order shuffled too), so any prefix holds equal shares (+-1).
    ``diverse``: k-center greedy on image thumbnails for the first ``count`` (it decodes every
    candidate once, small). ``only_class`` keeps one class (the imbalanced-calibration experiment).
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(index.labels if index.labels else [UNLABELLED] * len(index))
    candidates = np.arange(len(index))
    if only_class is not None:
        if only_class not in index.class_names:
            raise UsageError(
                f"class {only_class!r} not found; classes here: {list(index.class_names) or 'none'}"
            )
        candidates = candidates[labels == index.class_names.index(only_class)]
    if strategy == "random":
        return rng.permutation(candidates).tolist()
    if strategy == "diverse":
        from int8lab.data.diversity import k_center_order, thumbnails

        features = thumbnails(index, candidates.tolist(), workers)
        return [int(candidates[k]) for k in k_center_order(features, seed, count or len(candidates))]
    if not index.class_names:
        raise UsageError("the stratified strategy needs class folders (a classification layout)")
    groups = [rng.permutation(candidates[labels[candidates] == c]) for c in np.unique(labels[candidates])]
    groups = [groups[i] for i in rng.permutation(len(groups))]
    longest = max((len(g) for g in groups), default=0)
    return [int(g[k]) for k in range(longest) for g in groups if k < len(g)]
