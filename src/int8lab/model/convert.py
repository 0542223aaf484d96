"""Float model -> .tflite in one of seven modes.

Keras and SavedModel sources go through TensorFlow's own converter (or, with backend "aeq", to a
float .tflite and then ai-edge-quantizer). A float .tflite, and PyTorch and ONNX models (whose
float .tflite litert-torch makes), are quantized by ai-edge-quantizer.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from int8lab.errors import Int8labError, UsageError

MODES = ("none", "fp16", "dynamic", "int8", "uint8", "int8-float-io", "int16x8")
CALIBRATED_MODES = ("int8", "uint8", "int8-float-io", "int16x8")
FULLY_INTEGER_MODES = CALIBRATED_MODES
INT8_ACTIVATION_MODES = ("int8", "uint8", "int8-float-io")  # one int8 scale per tensor, outputs included


class ConversionError(Int8labError):
    """The converter refused the model (an op with no integer kernel, say)."""


def uses_aeq(source) -> bool:
    """Whether ai-edge-quantizer (rather than TF's converter) quantizes this source."""
    return source.kind in ("tflite", "torch", "onnx") or getattr(source, "backend", "") == "aeq"


def available_modes(source) -> tuple[str, ...]:
    from int8lab.model.aeq import AEQ_MODES

    return AEQ_MODES if uses_aeq(source) else MODES


def convert(source, mode: str, representative_dataset=None, notes: dict | None = None, head_score=None) -> bytes:
    """Convert ``source`` (a model source); calibrated modes need a representative dataset (a
    callable yielding ``[float32 batch]``). The caller still checks the result's op dtypes.
    ``notes`` receives what ai-edge-quantizer's range corrections changed (int8lab.model.ranges);
    ``head_score`` is a detector's fidelity measure (int8lab.model.aeq.quantize_tflite)."""
    if mode not in MODES:
        raise UsageError(f"--quantize must be one of {MODES}, got {mode!r}")
    if mode in CALIBRATED_MODES and representative_dataset is None:
        raise UsageError(f"mode {mode} needs calibration data (--data)")
    if uses_aeq(source):
        from int8lab.model.aeq import quantize_tflite

        keras_like = source.kind in ("keras", "saved_model")
        float_model = tf_convert(source, "none") if keras_like else source.content
        return quantize_tflite(float_model, mode, representative_dataset,
                               getattr(source, "range_estimator", "minmax"), notes,
                               getattr(source, "bias_correction", True), head_score)
    return tf_convert(source, mode, representative_dataset, notes)


def tf_convert(source, mode: str, representative_dataset=None, notes: dict | None = None) -> bytes:
    """TensorFlow's converter. Integer modes set the integer-only op set, so the converter fails
    instead of keeping float kernels where it can tell; int8-float-io then takes the CPU plan
    (int8lab.model.converter_plan), whose choices go into ``notes``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    converter = source.tflite_converter()
    if mode != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if mode in CALIBRATED_MODES:
        converter.representative_dataset = representative_dataset
    if mode in ("int8", "uint8", "int8-float-io"):
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"int8": tf.int8, "uint8": tf.uint8, "int16x8": tf.int16}.get(mode)
    if mode == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if io_type is not None:
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    try:
        with stdout_to_devnull(), warnings.catch_warnings():
            # Keras prints its export to stdout, which would corrupt --json output; the converter
            # warns that int8 I/O has no input statistics, which is the design, not a problem.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs", UserWarning)
            if mode == "int8-float-io":
                from int8lab.model.converter_plan import cpu_plan

                return cpu_plan(converter, representative_dataset, tf_convert(source, "none"), notes)
            return converter.convert()
    except Exception as exc:  # the converter raises several private error types
        if isinstance(exc, Int8labError):
            raise
        lines = dict.fromkeys(line.strip() for line in str(exc).splitlines() if line.strip())
        first_lines = "\n".join(list(lines)[:6])  # the converter repeats a reason once per op
        raise ConversionError(f"the TFLite converter failed for mode {mode}:\n{first_lines}") from None


@contextlib.contextmanager
def stdout_to_devnull():
    """Send file descriptor 1 to /dev/null for a while (native code writes there directly)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
