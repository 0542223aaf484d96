"""Where the model will run decides its precision plan and I/O types, resolved once from
``--target`` and ``--quantize``:

- ``cpu`` (the default): LiteRT with XNNPACK on phones, desktops and boards. Integer kernels with
  float input and output, and what XNNPACK has no int8 kernel for (int16 tensors, int8 softmax,
  hard-swish, a batch matmul of two activations, the QUANTIZE of an int8 -> int16 requantization)
  in float inside the delegate, where it is both faster and closer to float: on a CPU without
  AVX-512 VNNI an op left to LiteRT's built-in kernels costs more than int8 saves.
- ``integer``: NPUs, DSPs, Edge TPU, microcontrollers: every op integer, int8 input and output,
  int16 logits where int8 would tie them.
- ``mediapipe``: what MediaPipe Tasks take (float I/O, NormalizationOptions metadata) and, for a
  detector, the output form its ObjectDetector decodes (int8lab.model.mediapipe_detector).
"""

from __future__ import annotations

from int8lab.errors import UsageError

TARGETS = ("cpu", "integer", "mediapipe")
AUTO = "auto"  # --quantize's default: the calibrated mode of the target's plan
PLAN_MODES = {"cpu": "int8-float-io", "integer": "int8", "mediapipe": "int8-float-io"}
PLAN_WHY = {
    "cpu": ("integer kernels with float I/O, and float inside XNNPACK where it has no int8 kernel: every op runs "
            "in the delegate (on a CPU without VNNI an op left to LiteRT's built-in kernels costs more than int8 "
            "saves); --target integer gives a fully integer model"),
    "integer": "every op integer, int8 input and output: for NPUs, DSPs, Edge TPU and microcontrollers",
}
MEDIAPIPE_WHY = ("float input and output with NormalizationOptions metadata (integer kernels, apart from what "
                 "XNNPACK refuses in int8, run in float inside it, and logits that int8 would tie): MediaPipe "
                 "Tasks refuse int8 tensors, and a uint8 input would have to hold the preprocessing as one "
                 "integer zero point, which [-1, 1] (127.5) and per-channel mean/std cannot give")


def other_plan(target: str) -> str | None:
    """The target whose plan the report measures beside this one's (cpu <-> integer)."""
    return {"cpu": "integer", "integer": "cpu"}.get(target)


def mode_for_target(mode: str, target: str, spec) -> tuple[str, str | None]:
    """The conversion mode to use for ``target`` (``mode`` "auto": the target's plan), and why
    (None when the user named the mode and the target takes it as it is)."""
    if target not in TARGETS:
        raise UsageError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    if target != "mediapipe":
        return (PLAN_MODES[target], PLAN_WHY[target]) if mode == AUTO else (mode, None)
    if spec.layout != "nhwc":
        raise UsageError("MediaPipe Tasks feed NHWC images; this model takes NCHW: give --io-layout nhwc")
    if spec.color != "rgb" or spec.channels != 3:
        raise UsageError(f"MediaPipe Tasks feed 3-channel RGB images; this model takes "
                         f"{spec.channels}-channel {spec.color.upper()}")
    if mode in ("none", "fp16", "dynamic", "int8-float-io"):
        return mode, None  # float I/O already
    if mode in (AUTO, "int8", "uint8"):
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
