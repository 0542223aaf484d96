"""Progress for long work, on stderr so it never mixes with --json output: bars for counted
work (``track``), and named phases (``phase``) that show a live line with the time elapsed while
they run and keep their durations for the report (``phases``). One live display serves them all."""

from __future__ import annotations

import contextlib
import sys
import time
from contextvars import ContextVar

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text


def progress_enabled(progress: bool | None) -> bool:
    """None means: show progress when a person is watching (stderr is a terminal)."""
    return sys.stderr.isatty() if progress is None else progress


class _Count(ProgressColumn):
    """"done/total" for counted work, nothing for a phase."""

    def render(self, task) -> Text:
        return Text("" if task.total is None else f"{int(task.completed)}/{int(task.total)}")


def _progress(transient: bool = True) -> Progress:
    """A display on stderr as it is now: a library's output silenced later (redirected) leaves it be."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), _Count(), TimeElapsedColumn(),
                    console=Console(file=sys.stderr), transient=transient)


class Phases:
    """The phases of one job, in the order they ended, with their durations in seconds; a phase
    inside another is named "outer / inner"."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.durations: dict[str, float] = {}
        self.open: list[str] = []
        self.display: Progress | None = None

    def as_list(self) -> list[dict]:
        return [{"phase": name, "seconds": round(seconds, 2)} for name, seconds in self.durations.items()]


_CURRENT: ContextVar[Phases | None] = ContextVar("int8lab_phases", default=None)


@contextlib.contextmanager
def phases(enabled: bool):
    """Collect the phases run inside (showing them when ``enabled``); an enclosing job's
    collection is used when there is one, so a job called by another adds to its record."""
    outer = _CURRENT.get()
    if outer is not None:
        yield outer
        return
    collected = Phases(enabled)
    token = _CURRENT.set(collected)
    try:
        yield collected
    finally:
        _CURRENT.reset(token)
        if collected.display is not None:
            collected.display.stop()


@contextlib.contextmanager
def phase(name: str):
    """A named step of the current job: a live line with its elapsed time while it runs (so no
    long step is silent), its duration recorded. Outside ``phases`` it only runs."""
    current = _CURRENT.get()
    if current is None:
        yield
        return
    full = " / ".join([*current.open, name])
    current.open.append(name)
    display = _display(current)
    task = display.add_task(full, total=None) if display is not None else None
    start = time.perf_counter()
    try:
        yield
    finally:
        current.open.pop()
        seconds = time.perf_counter() - start
        current.durations[full] = current.durations.get(full, 0.0) + seconds
        if display is not None:
            display.remove_task(task)
            display.console.print(f"[dim]{full}: {_duration(seconds)}[/dim]", highlight=False)


def track(iterable, total: int | None, description: str, enabled: bool):
    """Yield from ``iterable`` while drawing a bar (in the job's live display when there is
    one); the bar ends when the consumer stops. An item counts as done once it is produced, so a
    consumer that stops after the last one it wanted leaves a full bar."""
    if not enabled:
        yield from iterable
        return
    current = _CURRENT.get()
    shared = _display(current) if current is not None else None
    start, done = time.perf_counter(), 0
    with contextlib.nullcontext(shared) if shared is not None else _progress(transient=False) as bar:
        task = bar.add_task(description, total=total)
        try:
            for item in iterable:
                bar.advance(task)
                done += 1
                yield item
        finally:
            if shared is not None:
                bar.remove_task(task)
                shared.console.print(f"[dim]{description}: {done} in {_duration(time.perf_counter() - start)}[/dim]",
                                     highlight=False)


def _display(current: Phases) -> Progress | None:
    """The job's live display, started on first use (None when progress is off)."""
    if not current.enabled:
        return None
    if current.display is None:
        current.display = _progress()
        current.display.start()
    return current.display


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def steps(iterable, total: int | None, description: str):
    """``track`` inside the current job's display (silent outside a job or with progress off)."""
    current = _CURRENT.get()
    yield from track(iterable, total, description, current is not None and current.enabled)
