"""Float .tflite -> quantized .tflite with ai-edge-quantizer (the path for models with no Keras
graph left: a float .tflite from any exporter).

Its static recipes give the model an integer interface too (int8 or int16 I/O); it has no
float-I/O or uint8-I/O variant and no float16 recipe, so those modes need the Keras/SavedModel
source and the TF converter.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np

from int8lab.errors import Int8labError, UsageError

AEQ_MODES = ("none", "dynamic", "int8", "int16x8")


class QuantizerError(Int8labError):
    """ai-edge-quantizer refused the model."""


def _recipe(mode: str, estimator: str):
    from ai_edge_quantizer import recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from int8lab.model.source import RANGE_ESTIMATORS

    key = AlgorithmName[RANGE_ESTIMATORS[estimator]]
    return {"dynamic": recipe.dynamic_wi8_afp32, "int8": recipe.static_wi8_ai8,
            "int16x8": recipe.static_wi8_ai16}[mode](key)


def quantize_tflite(content: bytes, mode: str, representative_dataset=None, estimator: str = "minmax") -> bytes:
    """Quantize a float .tflite; calibrated modes take int8lab's ``[batch]`` batches.
    ``estimator`` picks the range algorithm (min/max, or OCTAV's clipping for weights)."""
    if mode not in AEQ_MODES:
        raise UsageError(f"mode {mode} is not available for a .tflite source (ai-edge-quantizer "
                         f"offers {', '.join(AEQ_MODES)}); convert from the Keras/SavedModel model")
    if mode == "none":
        return content
    from ai_edge_quantizer import quantizer

    qt = quantizer.Quantizer(bytearray(content), _recipe(mode, estimator))
    calibration = None
    with _reasons(mode):
        if qt.need_calibration:
            if representative_dataset is None:
                raise UsageError(f"mode {mode} needs calibration data (--data)")
            samples = _calibration_samples(content, representative_dataset)
        with _quiet(getattr(representative_dataset, "show_progress", True)):
            if qt.need_calibration:
                calibration = qt.calibrate(samples)
            result = qt.quantize(calibration, enable_progress_report=False)
    return bytes(result.quantized_model)


class Requantizer:
    """Full int8 by ai-edge-quantizer, calibrated once, then quantized again with chosen ops left
    in float (``--max-drop`` on the .tflite, PyTorch and ONNX path): no recalibration per step."""

    def __init__(self, float_content: bytes, representative_dataset, estimator: str = "minmax"):
        self.float_content = float_content
        self.estimator = estimator
        with _reasons("int8"), _quiet(getattr(representative_dataset, "show_progress", True)):
            samples = _calibration_samples(float_content, representative_dataset)
            self.calibration = self._quantizer(()).calibrate(samples)

    def _quantizer(self, float_tensors):
        from ai_edge_quantizer import quantizer
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
        from ai_edge_quantizer.qtyping import TFLOperationName

        qt = quantizer.Quantizer(bytearray(self.float_content), _recipe("int8", self.estimator))
        for name in float_tensors:  # an op's scope is its output names, each followed by ";"
            qt.update_quantization_recipe(regex=f"(^|;){re.escape(name)};", algorithm_key=AlgorithmName.NO_QUANTIZE,
                                          operation_name=TFLOperationName.ALL_SUPPORTED)
        return qt

    def quantize(self, float_tensors=()) -> bytes:
        """The int8 model with the ops producing ``float_tensors`` left in float."""
        with _reasons("int8"), _quiet(False):
            result = self._quantizer(float_tensors).quantize(self.calibration, enable_progress_report=False)
        return bytes(result.quantized_model)


def _calibration_samples(content: bytes, representative_dataset) -> dict:
    """int8lab's ``[batch]`` batches keyed as ai-edge-quantizer's calibration takes them."""
    signature, input_name = serving_input(content)
    return {signature: [{input_name: np.asarray(batch[0], np.float32)} for batch in representative_dataset()]}


@contextlib.contextmanager
def _reasons(mode: str):
    """ai-edge-quantizer raises plain ValueError/RuntimeError: make them one clear error."""
    try:
        yield
    except Int8labError:
        raise
    except Exception as exc:
        raise QuantizerError(f"ai-edge-quantizer failed for mode {mode}: {exc}") from None


@contextlib.contextmanager
def _quiet(show_progress: bool):
    """Hide ai-edge-quantizer's debugging notice and size report, and its tqdm bar (which
    writes to sys.stderr) when progress is off."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", ".*experimental_preserve_all_tensors", UserWarning)
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        if not show_progress:
            stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        yield


def serving_input(content: bytes) -> tuple[str, str]:
    """The signature and input name that calibration samples are keyed by."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=content).get_signature_list()
    if not signatures:
        raise UsageError("the .tflite has no signature; ai-edge-quantizer needs one "
                         "(export it with a serving signature)")
    key, signature = next(iter(signatures.items()))
    if len(signature["inputs"]) != 1:
        raise UsageError(f"int8lab takes models with one image input, got {len(signature['inputs'])}")
    return key, signature["inputs"][0]
