"""What every model source shares: its input, the options that load it, the range algorithms.

The sources (int8lab.model.source, torch_source, onnx_source) and the quantizers (convert, aeq)
all read these; this module reads none of them, so dependencies run one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from int8lab.errors import UsageError

RANGE_ESTIMATORS = {"minmax": "MIN_MAX_UNIFORM_QUANT", "octav": "OCTAV"}  # --range-estimator -> ai-edge-quantizer


@dataclass(frozen=True)
class ModelInput:
    """The float model's single image input."""

    shape: tuple  # with None for unknown dims, batch first
    layout: str  # "nhwc" or "nchw"

    @property
    def size(self) -> tuple[int, int] | None:
        h, w = (self.shape[1], self.shape[2]) if self.layout == "nhwc" else (self.shape[2], self.shape[3])
        return (h, w) if h and w else None

    @property
    def channels(self) -> int | None:
        return self.shape[3] if self.layout == "nhwc" else self.shape[1]


@dataclass(frozen=True)
class ModelOptions:
    """How to load a model that does not say everything about itself (PyTorch, ONNX)."""

    arch: str | None = None  # module:function building the network of a state dict
    io_layout: str | None = None  # "nhwc": give an NCHW PyTorch/ONNX model NHWC input
    input_size: tuple[int, int] | None = None  # for modules that record no input shape
    channels: int | None = None
    backend: str = "converter"  # Keras/SavedModel: TF converter, or "aeq" (ai-edge-quantizer)
    range_estimator: str = "minmax"  # ai-edge-quantizer: minmax, or octav (clipping-optimal weights)
    trust_pickle: bool = False  # PyTorch: unpickle arbitrary objects (can run code), not only tensors
    bias_correction: bool = True  # ai-edge-quantizer: int8lab.model.bias_correction, where it measures better


def image_input(shape: tuple, path: Path) -> ModelInput:
    """Read the layout off a 4-D input shape: channels (1 or 3) first means NCHW."""
    if len(shape) != 4:
        raise UsageError(f"{path}: expected one 4-D image input, got shape {shape}")
    layout = "nchw" if shape[1] in (1, 3) and shape[3] not in (1, 3) else "nhwc"
    return ModelInput(shape, layout)
