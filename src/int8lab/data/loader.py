"""Decode and preprocess sources in parallel threads, in order, with bounded memory.

Pillow releases the GIL while it decodes and resizes, so threads scale on a multi-core machine.
Only a small window of finished tensors (already at model size) is held at any time.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from itertools import islice

from int8lab.imageops import ImageDecodeError

WINDOW_PER_WORKER = 4


@dataclass(frozen=True)
class SkippedSource:
    """A source that could not be used, and why: reported, never fatal."""

    path: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _guarded(fn, item):
    try:
        return fn(item)
    except ImageDecodeError as exc:
        return exc


def ordered_map(fn, items, workers: int | None = None):
    """Yield ``(item, fn(item))`` in input order; an ImageDecodeError is yielded, not raised.

    Any other exception is a bug or a fatal user error and propagates. Stopping early (closing
    the generator) cancels the work still queued.
    """
    workers = workers or default_workers()
    items = iter(items)
    if workers == 1:
        for item in items:
            yield item, _guarded(fn, item)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="int8lab-load")
    try:
        window = deque(
            (item, pool.submit(_guarded, fn, item))
            for item in islice(items, workers * WINDOW_PER_WORKER)
        )
        while window:
            item, future = window.popleft()
            for nxt in islice(items, 1):
                window.append((nxt, pool.submit(_guarded, fn, nxt)))
            yield item, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def chunked(items, size: int):
    """Lists of ``size`` consecutive items (the last may be shorter), lazily."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
