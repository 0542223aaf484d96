"""Another tool's int8 on the same model and images, run in the same process as int8lab's: the
baseline every bench prints its ratios against (ONNX Runtime's quantize_static)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OrtModel:
    """An ONNX model in ONNX Runtime, batch by batch (what the evaluations call)."""

    def __init__(self, path: Path):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name
        self.size_bytes = path.stat().st_size

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.concatenate([self.session.run(None, {self.name: batch[i:i + 1]})[0] for i in range(len(batch))])


def ort_static_int8(model: Path, batches, out: Path, method: str = "MinMax") -> Path:
    """ONNX Runtime's quantize_static: QDQ, per-channel int8 weights, int8 activations whose
    ranges come from ``method`` (MinMax, Percentile or Entropy) over ``batches`` (float32, the
    ONNX model's layout)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            name = OrtModel(model).name
            self.batches = iter([{name: batch} for batch in batches])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(model), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    calibrate_method=CalibrationMethod[method])
    return out
