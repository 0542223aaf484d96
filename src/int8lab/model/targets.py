"""Where the model will run decides its I/O types: LiteRT takes any; MediaPipe Tasks take only
what their image preprocessing can feed."""

from __future__ import annotations

from int8lab.errors import UsageError

TARGETS = ("litert", "mediapipe")
MEDIAPIPE_WHY = ("float input and output with NormalizationOptions metadata (integer kernels, apart from what "
                 "XNNPACK runs faster in float: hard-swish, softmax, logits that int8 would tie): MediaPipe "
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
