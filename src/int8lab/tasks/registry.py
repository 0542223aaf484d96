"""Which task a model has, and the module that scores it (int8lab.tasks: one module per task)."""

from __future__ import annotations

from types import ModuleType

from int8lab.errors import UsageError

TASKS = ("auto", "classify", "detect")


def infer_task(output_shape: tuple[int, ...], requested: str = "auto") -> str:
    """The task the user named, else the one the float model's output shape says."""
    from int8lab.tasks.detect import looks_like_detector

    if requested not in TASKS:
        raise UsageError(f"--task must be one of {TASKS}, got {requested!r}")
    if requested != "auto":
        return requested
    return "detect" if looks_like_detector(tuple(output_shape)) else "classify"


def get_task(name: str) -> ModuleType:
    if name == "detect":
        from int8lab.tasks import detect

        return detect
    from int8lab.tasks import classify

    return classify


def task_of_results(results: dict) -> ModuleType:
    return get_task(results.get("task", "classify"))
