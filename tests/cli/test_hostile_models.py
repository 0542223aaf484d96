"""Model files that are not what their name says: a clear error, exit code 2, no traceback, and
nothing written (issue 12)."""

from __future__ import annotations

import pickle

import pytest
from conftest import ROOT, int8lab

torch = pytest.importorskip("torch")
MARKER_NAME = "pickle_ran_code"


class RunsCode:
    """Unpickling this creates a file: what a malicious checkpoint could do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_files(tmp_path):
    real_tflite = ROOT / "examples" / "detect" / "yolo_tiny.onnx"
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(b"TFL3" + bytes(500))
    text = tmp_path / "notes.keras"
    text.write_text("this is a text file, not a Keras model\n")
    half = tmp_path / "half.onnx"
    half.write_bytes(real_tflite.read_bytes()[:100_000])
    pickled = tmp_path / "model.pt"
    with open(pickled, "wb") as handle:
        pickle.dump({"state_dict": RunsCode(tmp_path / MARKER_NAME)}, handle)
    return {"truncated .tflite": truncated, "text named .keras": text, "half an .onnx": half,
            "pickle that runs code": pickled}


@pytest.mark.parametrize("kind", ["truncated .tflite", "text named .keras", "half an .onnx", "pickle that runs code"])
def test_a_hostile_model_file_is_a_clear_error(tmp_path, kind):
    model = hostile_files(tmp_path)[kind]
    out = tmp_path / "out.tflite"
    result = int8lab("convert", model, "--quantize", "none", "--input-size", "32", "32", "-o", out, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / MARKER_NAME).exists()


def test_trust_pickle_names_itself_in_the_error(tmp_path):
    result = int8lab("convert", hostile_files(tmp_path)["pickle that runs code"], "--quantize", "none",
                     "-o", tmp_path / "o.tflite", check=False)
    assert "--trust-pickle" in result.stderr and not (tmp_path / MARKER_NAME).exists()


def test_a_truncated_tflite_is_refused_by_validate_too(tmp_path, fashion_model, fashion_dir):
    truncated = hostile_files(tmp_path)["truncated .tflite"]
    result = int8lab("validate", truncated, "--reference", fashion_model, "--data", fashion_dir, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
