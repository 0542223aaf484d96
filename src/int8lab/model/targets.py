"""Where the model will run decides its I/O types (LiteRT takes any; MediaPipe Tasks take only
what their image preprocessing can feed) and a detector's output form (MediaPipe's ObjectDetector
decodes two outputs itself: int8lab.model.mediapipe_detector)."""

from __future__ import annotations

from int8lab.errors import UsageError

TARGETS = ("litert", "mediapipe")
MEDIAPIPE_WHY = ("float input and output with NormalizationOptions metadata (integer kernels, apart from what "
                 "XNNPACK refuses in int8, run in float inside it, and logits that int8 would tie): MediaPipe "
                 "Tasks refuse int8 tensors, and a uint8 input would have to hold the preprocessing as one "
                 "integer zero point, which [-1, 1] (127.5) and per-channel mean/std cannot give")


def mode_for_target(mode: str, target: str, spec) -> tuple[str, str | None]:
    """The conversion mode to use for ``target``, and why it differs from ``mode`` (or None)."""
    if target not in TARGETS:
        raise UsageError(f"--target must be one of {TARGETS}, got {target!r}")
    if target == "litert":
        return mode, None
    if spec.layout != "nhwc":
        raise UsageError("MediaPipe Tasks feed NHWC images; this model takes NCHW: give --io-layout nhwc")
    if spec.color != "rgb" or spec.channels != 3:
        raise UsageError(f"MediaPipe Tasks feed 3-channel RGB images; this model takes "
                         f"{spec.channels}-channel {spec.color.upper()}")
    if mode in ("none", "fp16", "dynamic", "int8-float-io"):
        return mode, None  # float I/O already
    if mode in ("int8", "uint8"):
        return "int8-float-io", MEDIAPIPE_WHY
    raise UsageError(f"mode {mode} has int16 I/O, which MediaPipe Tasks do not take; use int8 with --target mediapipe")


MEDIAPIPE_DETECTOR_FORM = ("two float outputs, location [1, N, 4] (centre y, x, height, width as fractions of the "
                           "input) and score [1, N, classes], with DETECTOR_METADATA (identity anchors): the form "
                           "MediaPipe's ObjectDetector decodes itself, threshold and NMS included; appended in float "
                           "after the validated int8 model")


def check_mediapipe_detector(task: dict, spec) -> None:
    """Before converting: what MediaPipe's ObjectDetector cannot take."""
    from int8lab.model.mediapipe_detector import check_layout

    check_layout(task["layout"])
    if spec.resize != "stretch":
        raise UsageError(f"MediaPipe's ObjectDetector stretches each image to the model's input size (no "
                         f"letterbox): give --resize stretch (not {spec.resize}) so that calibration and "
                         f"validation see what it will feed")
    if not task.get("names"):
        raise UsageError("--target mediapipe needs the class names for the score tensor's labels "
                         "(a data.yaml beside the images, or --labels)")


def for_target(content: bytes, task: dict, target: str) -> tuple[bytes, dict]:
    """The model as its target runs it: a detector for MediaPipe gets its two outputs
    (int8lab.model.mediapipe_detector); the task keeps the layout it had as ``source_layout``."""
    if target != "mediapipe" or "layout" not in task:
        return content, task
    from int8lab.model.mediapipe_detector import with_mediapipe_outputs

    content, layout = with_mediapipe_outputs(content, task["layout"])
    return content, {**task, "layout": layout, "source_layout": task["layout"], "form": MEDIAPIPE_DETECTOR_FORM}
