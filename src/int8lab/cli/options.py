"""Options shared by every command that reads calibration data, declared once.

``data_options`` appends these parameters to a command's signature (Typer reads the signature)
and hands the command one frozen DataOptions instead of twenty loose arguments.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from pathlib import Path

import typer

from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.errors import UsageError
from int8lab.preprocess import PreprocessSpec, resolve_preprocess_spec


@dataclass(frozen=True)
class DataOptions:
    dataset_type: str = "auto"
    split: str | None = None
    num_samples: int = 100
    batch_size: int = 1
    seed: int = 42
    strategy: str = "random"
    only_class: str | None = None
    input_size: tuple[int, int] = (224, 224)
    resize: str = "stretch"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    color: str = "rgb"
    channels: int = 3
    preset: str = "imagenet"
    mean: str | None = None
    std: str | None = None
    layout: str = "nhwc"
    jpeg_draft: bool = True
    workers: int | None = None
    quiet: bool = False

    def spec(self) -> PreprocessSpec:
        return resolve_preprocess_spec(
            self.input_size, preset=self.preset, mean=_floats(self.mean, "--mean"),
            std=_floats(self.std, "--std"), channels=self.channels, color=self.color,
            resize=self.resize, crop_pct=self.crop_pct, interpolation=self.interpolation,
            layout=self.layout, jpeg_draft=self.jpeg_draft,
        )

    def generator(self, data_dir: Path) -> RepresentativeDataGenerator:
        return RepresentativeDataGenerator(
            data_dir, self.dataset_type, self.num_samples, self.batch_size, seed=self.seed,
            split=self.split, strategy=self.strategy, only_class=self.only_class,
            workers=self.workers, progress=not self.quiet, spec=self.spec(),
        )


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise UsageError(f"{flag} takes numbers separated by commas, got {text!r}") from None


_HELP = {
    "dataset_type": ("--dataset-type", "auto | classification | detection | folder | npy."),
    "split": ("--split", "Split folder to read (default: val, then test, then all)."),
    "num_samples": ("--num-samples", "How many calibration samples to draw."),
    "batch_size": ("--batch-size", "Samples per batch."),
    "seed": ("--seed", "Seed of the sampling order."),
    "strategy": ("--strategy", "random | stratified (equal share per class)."),
    "only_class": ("--only-class", "Draw from this one class only (imbalanced calibration)."),
    "input_size": ("--input-size", "Model input height and width."),
    "resize": ("--resize", "stretch | letterbox (pad 114) | center-crop."),
    "crop_pct": ("--crop-pct", "Centre-crop fraction (resize to size/crop_pct, then crop)."),
    "interpolation": ("--interpolation", "bilinear | bicubic | nearest | area | lanczos."),
    "color": ("--color", "rgb | bgr channel order."),
    "channels": ("--channels", "1 (grayscale) or 3."),
    "preset": ("--preset", "imagenet | tf ([-1,1]) | unit ([0,1]) | raw (0-255)."),
    "mean": ("--mean", "Per-channel mean in [0,1] units, e.g. 0.485,0.456,0.406 (overrides the preset)."),
    "std": ("--std", "Per-channel std in [0,1] units (overrides the preset)."),
    "layout": ("--layout", "nhwc | nchw, the model's input layout."),
    "jpeg_draft": ("--jpeg-draft/--no-jpeg-draft", "Let JPEG decoding downscale in the DCT domain (faster)."),
    "workers": ("--workers", "Decoding threads (default: CPU count, at most 8)."),
    "quiet": ("--quiet", "Hide progress bars."),
}


def _shared_parameters() -> list[inspect.Parameter]:
    hints = {"input_size": tuple[int, int], "num_samples": int, "batch_size": int,
             "seed": int, "crop_pct": float, "channels": int, "jpeg_draft": bool, "quiet": bool,
             "workers": int | None, "split": str | None, "only_class": str | None,
             "mean": str | None, "std": str | None}
    params = []
    for field in fields(DataOptions):
        flag, help_text = _HELP[field.name]
        names = [flag] + (["-q"] if field.name == "quiet" else [])
        params.append(inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(field.default, *names, help=help_text,
                                 metavar="H W" if field.name == "input_size" else None,
                                 rich_help_panel="Data and preprocessing"),
            annotation=hints.get(field.name, str),
        ))
    return params


def data_options(command):
    """Give ``command(..., opts: DataOptions)`` the shared data options as CLI flags."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "opts"]
    shared = _shared_parameters()
    names = [p.name for p in shared]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        opts = DataOptions(**{name: kwargs.pop(name) for name in names})
        return command(*args, opts=opts, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + shared)
    return wrapper
