"""``--preset auto``: find the preprocessing a model was trained with, from the model itself.

Most accuracy losses users report after quantization are a preprocessing mismatch, not the
quantization. So before calibrating, the float model is run on a few dozen images of the
calibration split under each candidate (the presets x RGB/BGR, in the layout the model takes):
on labelled data the most accurate candidate wins. On unlabelled data confidence alone misleads
(a wrong scale often saturates the softmax on one class), so candidates are ranked by how varied
their predictions are (entropy of the predicted-class histogram), then by confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from int8lab.config import DataOptions
from int8lab.errors import Int8labError
from int8lab.preprocess import PRESETS

DETECTION_SAMPLES = 50


class PreprocessingNotFoundError(Int8labError):
    """No candidate preprocessing lets the float model do its job: the data is the problem."""


@dataclass(frozen=True)
class Candidate:
    preset: str
    color: str
    accuracy: float | None
    confidence: float
    variety: float  # entropy of the predicted classes, 0 (always the same) to 1 (all equally often)

    def as_dict(self) -> dict:
        return {"preset": self.preset, "color": self.color, "accuracy": self.accuracy,
                "confidence": self.confidence, "variety": self.variety}

    def rank(self) -> tuple:
        if self.accuracy is not None:
            return (self.accuracy, self.confidence)
        return (round(self.variety, 2), self.confidence)


def _probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax unless the outputs already are probabilities."""
    if outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1, atol=1e-3):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def score_candidates(source, data_dir, opts: DataOptions, split: str | None,
                     samples: int = DETECTION_SAMPLES) -> list[Candidate]:
    """Every candidate's accuracy (None without labels) and mean top-1 confidence, best first."""
    colors = ("rgb", "bgr") if (opts.channels or source.input.channels or 3) == 3 else ("rgb",)
    candidates = []
    for preset in PRESETS:
        for color in colors:
            trial = replace(opts, preset=preset, color=color, mean=None, std=None)
            generator = trial.generator(data_dir, trial.spec(source.input), split=split, num_samples=samples,
                                        strategy="stratified" if _class_names(data_dir, trial, split) else "random",
                                        progress=False)
            batch = np.concatenate(list(generator.generate_batches()))
            probabilities = _probabilities(source.predict(batch).reshape(len(batch), -1))
            labels = [generator.index.labels[i] for i in generator.selected]
            # Class folders count as labels only when they can be the model's classes.
            labelled = len(generator.index.class_names) == probabilities.shape[1] and min(labels) >= 0
            accuracy = float(np.mean(probabilities.argmax(axis=1) == np.array(labels))) if labelled else None
            candidates.append(Candidate(preset, color, accuracy, float(probabilities.max(axis=1).mean()),
                                        _variety(probabilities)))
    return sorted(candidates, key=Candidate.rank, reverse=True)


def _variety(probabilities: np.ndarray) -> float:
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log(shares)).sum() / np.log(probabilities.shape[1]))


def _class_names(data_dir, opts: DataOptions, split) -> tuple[str, ...]:
    from int8lab.data.discovery import discover

    return discover(data_dir, opts.dataset_type, split).class_names


def resolve_auto_preset(source, data_dir, opts: DataOptions, split: str | None) -> tuple[DataOptions, dict]:
    """``opts`` with the detected preset and colour, and the evidence (for the sidecar .json)."""
    candidates = score_candidates(source, data_dir, opts, split)
    best = candidates[0]
    num_classes = len(_class_names(data_dir, opts, split))
    if best.accuracy is not None and best.accuracy < min(0.5, 2.0 / num_classes):
        table = ", ".join(f"{c.preset}/{c.color} {100 * c.accuracy:.0f}%" for c in candidates)
        raise PreprocessingNotFoundError(
            f"no preprocessing gives the float model a sane accuracy ({table}); the data, the class "
            f"order (--labels) or the input size is wrong, not the quantization")
    evidence = {"picked": {"preset": best.preset, "color": best.color},
                "by": "accuracy" if best.accuracy is not None else "prediction variety, then confidence",
                "samples": DETECTION_SAMPLES, "candidates": [c.as_dict() for c in candidates]}
    return replace(opts, preset=best.preset, color=best.color, mean=None, std=None), evidence


def evidence_table(evidence: dict) -> str:
    """A small Markdown table of what was tried and what won."""
    lines = ["| preset | colour | accuracy | mean confidence | prediction variety |", "|---|---|---|---|---|"]
    for c in evidence["candidates"]:
        accuracy = "n/a" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f}%"
        mark = " **(picked)**" if {"preset": c["preset"], "color": c["color"]} == evidence["picked"] else ""
        lines.append(f"| {c['preset']}{mark} | {c['color']} | {accuracy} | {c['confidence']:.3f} | "
                     f"{c['variety']:.2f} |")
    return "\n".join(lines)
