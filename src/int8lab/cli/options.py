"""Options shared by every command that reads calibration data, declared once.

``data_options`` appends these parameters to a command's signature (Typer reads the signature)
and hands the command one frozen DataOptions (int8lab.config) instead of twenty loose arguments.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import fields
from typing import get_type_hints

import typer

from int8lab.config import PREPROCESSING_FIELDS, DataOptions

_HELP = {
    "dataset_type": ("--dataset-type", "auto | classification | detection (YOLO) | coco | voc | folder | npy."),
    "split": ("--split", "Split folder to read (default: val, then test, then all)."),
    "num_samples": ("--num-samples", "How many calibration samples to draw."),
    "batch_size": ("--batch-size", "Samples per batch."),
    "seed": ("--seed", "Seed of the sampling order."),
    "strategy": ("--strategy", "random | stratified (equal share per class) | diverse (k-center "
                               "greedy on thumbnails)."),
    "only_class": ("--only-class", "Draw from this one class only (imbalanced calibration)."),
    "input_size": ("--input-size", "Input height and width (default: the model's, else 224 224)."),
    "resize": ("--resize", "stretch (default) | letterbox (pad 114) | center-crop."),
    "crop_pct": ("--crop-pct", "Centre-crop fraction (resize to size/crop_pct, then crop; default 0.875)."),
    "interpolation": ("--interpolation", "bilinear (default) | bicubic | nearest | area | lanczos."),
    "color": ("--color", "rgb (default) | bgr channel order."),
    "channels": ("--channels", "1 (grayscale) or 3 (default: the model's, else 3)."),
    "preset": ("--preset", "imagenet (default) | tf ([-1,1]) | unit ([0,1]) | raw (0-255) | auto (detect it with "
                          "the model on labelled images; convert/quantize/experiment)."),
    "mean": ("--mean", "Per-channel mean in [0,1] units, e.g. 0.485,0.456,0.406 (overrides the preset)."),
    "std": ("--std", "Per-channel std in [0,1] units (overrides the preset)."),
    "layout": ("--layout", "nhwc | nchw (default: the model's, else nhwc)."),
    "jpeg_draft": ("--jpeg-draft/--no-jpeg-draft", "Let JPEG decoding downscale in the DCT domain (faster; "
                   "the default)."),
    "override_preprocessing": ("--override-preprocessing", "Use these preprocessing flags although the model's "
                               "sidecar .json records other preprocessing (each difference is named in a warning "
                               "and the report). Without it they are refused: by default every preprocessing "
                               "setting a flag leaves open comes from the record."),
    "workers": ("--workers", "Decoding threads (default: CPU count, at most 8)."),
    "quiet": ("--quiet", "Hide progress bars."),
    "task": ("--task", "auto (from the float model's output shape) | classify | detect."),
    "normalise_boxes": ("--normalise-boxes/--keep-box-units", "Detectors: divide the boxes by the input size "
                        "before the final concat, so one int8 scale does not crush the scores."),
    "head_precision": ("--head-precision", "Detectors: auto (keep the decode tail, and the head's output "
                       "convolutions, in float where the calibration images measure it closer to the float model) | "
                       "int8 (every kernel integer, for accelerators that run nothing else)."),
    "integer_only": ("--integer-only", "Refuse a model with any float kernel the quantizer could not make "
                     "integer (by default such ops stay float, named in a warning)."),
    "trust_pickle": ("--trust-pickle", "PyTorch files holding pickled objects (a whole module): load them although "
                     "unpickling can run any code. Without it only tensors (state dicts) are read."),
    "target": ("--target", "cpu (default: LiteRT with XNNPACK; integer kernels, float I/O, float inside XNNPACK "
                           "where it has no int8 kernel) | integer (every op integer, int8 I/O: NPUs, DSPs, Edge TPU, "
                           "microcontrollers) | mediapipe (what MediaPipe Tasks take: float I/O with "
                           "NormalizationOptions metadata)."),
    "compare_plans": ("--compare-plans", "auto (when the first conversion took at most 90 s) | on | off: also "
                      "make the other plan's model (cpu <-> integer) and measure what it would cost in latency and "
                      "fidelity on this CPU, in the report."),
    "metadata": ("--metadata/--no-metadata", "Write TFLite Metadata (labels, normalisation) into the .tflite."),
}


def _shared_parameters(names: tuple[str, ...] | None = None) -> list[inspect.Parameter]:
    hints = get_type_hints(DataOptions)
    params = []
    for field in fields(DataOptions):
        if names is not None and field.name not in names:
            continue
        flag, help_text = _HELP[field.name]
        flags = [flag] + (["-q"] if field.name == "quiet" else [])
        params.append(inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(field.default, *flags, help=help_text,
                                 metavar="H W" if field.name == "input_size" else None,
                                 rich_help_panel="Data and preprocessing"),
            annotation=hints[field.name],
        ))
    return params


def data_options(command, names: tuple[str, ...] | None = None):
    """Give ``command(..., opts: DataOptions)`` the shared data options (or only ``names``) as CLI flags."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "opts"]
    shared = _shared_parameters(names)
    names = [p.name for p in shared]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        opts = DataOptions(**{name: kwargs.pop(name) for name in names})
        return command(*args, opts=opts, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + shared)
    return wrapper


def preprocessing_options(command):
    """Give a command that reads one model and a few images the preprocessing flags only."""
    return data_options(command, (*PREPROCESSING_FIELDS, "override_preprocessing"))
