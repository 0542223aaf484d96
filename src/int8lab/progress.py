"""Progress bars for long work, on stderr so they never mix with --json output."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_enabled(progress: bool | None) -> bool:
    """None means: show progress when a person is watching (stderr is a terminal)."""
    return sys.stderr.isatty() if progress is None else progress


def track(iterable, total: int | None, description: str, enabled: bool):
    """Yield from ``iterable`` while drawing a bar; the bar ends when the consumer stops.

    An item counts as done once it is produced, so a consumer that stops after the last one it
    wanted leaves a full bar.
    """
    if not enabled:
        yield from iterable
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            bar.advance(task)
            yield item
