"""Pre-flight checks: catch wrong calibration data before the converter silently uses it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from int8lab.errors import Int8labError
from int8lab.model.source import ModelInput
from int8lab.preprocess import PreprocessSpec

RECOMMENDED_CALIBRATION = 100


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    check: str
    message: str


class PreflightError(Int8labError):
    def __init__(self, findings: list[Finding]):
        self.findings = findings
        super().__init__("pre-flight checks failed:\n" + "\n".join(
            f"  - [{f.check}] {f.message}" for f in findings if f.level == "error"))


def check_layout(model_input: ModelInput, spec: PreprocessSpec) -> list[Finding]:
    want = tuple(model_input.shape[1:])
    have = spec.input_shape(1)[1:]
    if all(w is None or w == h for w, h in zip(want, have)):
        return []
    hint = ""
    if spec.layout != model_input.layout and sorted(have) == sorted(d for d in want if d):
        hint = f"; the model is {model_input.layout.upper()}: use --layout {model_input.layout}"
    elif model_input.size and tuple(spec.input_size) != model_input.size:
        hint = f"; use --input-size {model_input.size[0]} {model_input.size[1]}"
    elif model_input.channels and spec.channels != model_input.channels:
        hint = f"; use --channels {model_input.channels}"
    return [Finding("error", "shape",
                    f"calibration tensors are {have} per sample ({spec.layout.upper()}) but the model "
                    f"takes {want}{hint}")]


def check_batch(batch: np.ndarray, spec: PreprocessSpec) -> list[Finding]:
    findings = []
    if batch.dtype != np.float32:
        findings.append(Finding("error", "dtype", f"calibration tensors are {batch.dtype}, not float32"))
    low, high = spec.value_range()
    if batch.min() < low - 1e-4 or batch.max() > high + 1e-4:
        findings.append(Finding("error", "range", f"values span [{batch.min():.3g}, {batch.max():.3g}], "
                                                  f"outside the preset's [{low:.3g}, {high:.3g}]"))
    return findings


def check_double_normalisation(layers: list[str], spec: PreprocessSpec) -> list[Finding]:
    raw = spec.mean == (0.0,) * spec.channels and all(abs(s * 255 - 1) < 1e-9 for s in spec.std)
    if not layers or raw:
        return []
    return [Finding("error", "double-normalisation",
                    f"the model normalises its own input (layers {', '.join(layers)}) and the data is "
                    f"normalised too (preset {spec.preset}); use --preset raw, or "
                    f"--allow-double-normalisation if those layers really expect normalised input")]


def check_calibration_size(count: int) -> list[Finding]:
    if count >= RECOMMENDED_CALIBRATION:
        return []
    return [Finding("warning", "calibration-size",
                    f"only {count} calibration images; 100-500 are recommended")]


def check_overlap(calibration_files: list[str], validation_files: list[str]) -> list[Finding]:
    shared = sorted(set(calibration_files) & set(validation_files))
    if not shared:
        return []
    return [Finding("error", "overlap",
                    f"{len(shared)} images are in both the calibration and the validation set "
                    f"(e.g. {shared[0]}); calibrate on val/ and validate on test/")]


EXPECTED_INPUT_DTYPE = {"int8": "int8", "uint8": "uint8", "int16x8": "int16"}


def check_interface(mode: str, info) -> list[Finding]:
    """Say so when the model's I/O type is not the one the mode promises (ai-edge-quantizer
    keeps float I/O), so nobody feeds int8 to a float input on the device."""
    want, have = EXPECTED_INPUT_DTYPE.get(mode), info.inputs[0].dtype
    if want is None or want == have:
        return []
    return [Finding("warning", "interface",
                    f"mode {mode} asked for {want} input/output, the model takes {have}: its kernels "
                    f"are integer, its interface stays {have} (feed it {have} tensors)")]


def raise_on_errors(findings: list[Finding]) -> list[Finding]:
    """Return the warnings; raise PreflightError if any finding is an error."""
    if any(f.level == "error" for f in findings):
        raise PreflightError(findings)
    return [f for f in findings if f.level == "warning"]
