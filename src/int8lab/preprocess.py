"""The preprocessing spec: resolved once from user options, then passed down and saved.

The same spec (as JSON) is written beside every output, so calibration, validation and the
inference snippet all preprocess in exactly one way. The pixel work itself lives in
``int8lab.imageops``; this module only decides *what* that work is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from int8lab.errors import UsageError
from int8lab.imageops import RESAMPLING

# Mean and std in [0, 1] pixel units, RGB order (the torchvision/timm convention):
# tensor = (pixel / 255 - mean) / std.
PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "tf": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [-1, 1], Keras 'tf' mode
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # [0, 1]
    "raw": ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)),  # 0..255 unchanged
}
RESIZE_MODES = ("stretch", "letterbox", "center-crop")
COLORS = ("rgb", "bgr")
LAYOUTS = ("nhwc", "nchw")


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything that decides the calibration tensor for one image.

    ``mean``/``std`` are per output channel (after the rgb/bgr swap), in [0, 1] units.
    """

    input_size: tuple[int, int] = (224, 224)
    resize: str = "stretch"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    color: str = "rgb"
    channels: int = 3
    preset: str = "imagenet"
    mean: tuple[float, ...] = PRESETS["imagenet"][0]
    std: tuple[float, ...] = PRESETS["imagenet"][1]
    layout: str = "nhwc"
    pad_value: int = 114
    jpeg_draft: bool = True

    def __post_init__(self):
        height, width = self.input_size
        checks = [
            (height > 0 and width > 0, f"input size must be positive, got {self.input_size}"),
            (self.resize in RESIZE_MODES, f"resize must be one of {RESIZE_MODES}"),
            (0 < self.crop_pct <= 1, f"crop_pct must be in (0, 1], got {self.crop_pct}"),
            (self.interpolation in RESAMPLING, f"interpolation must be one of {tuple(RESAMPLING)}"),
            (self.color in COLORS, f"color must be one of {COLORS}"),
            (self.channels in (1, 3), f"channels must be 1 or 3, got {self.channels}"),
            (self.layout in LAYOUTS, f"layout must be one of {LAYOUTS}"),
            (len(self.mean) == self.channels and len(self.std) == self.channels,
             f"mean and std need {self.channels} value(s) each, got {self.mean} and {self.std}"),
            (all(s > 0 for s in self.std), f"std must be positive, got {self.std}"),
            (0 <= self.pad_value <= 255, f"pad_value must be 0..255, got {self.pad_value}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def input_shape(self, batch_size: int = 1) -> tuple[int, ...]:
        height, width = self.input_size
        if self.layout == "nchw":
            return (batch_size, self.channels, height, width)
        return (batch_size, height, width, self.channels)

    def value_range(self) -> tuple[float, float]:
        """The smallest and largest value a tensor of this spec can hold."""
        lows = [(0.0 - m) / s for m, s in zip(self.mean, self.std)]
        highs = [(1.0 - m) / s for m, s in zip(self.mean, self.std)]
        return min(lows), max(highs)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessSpec":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("input_size", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> "PreprocessSpec":
        return cls.from_dict(json.loads(Path(path).read_text()))


def resolve_preprocess_spec(
    input_size: tuple[int, int] = (224, 224),
    *,
    preset: str = "imagenet",
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    channels: int = 3,
    color: str = "rgb",
    **options,
) -> PreprocessSpec:
    """Build the one spec from user-level options.

    A preset gives RGB-ordered mean/std; they are reordered for BGR and averaged for one channel.
    An explicit ``mean``/``std`` (in output channel order) overrides the preset's.
    """
    if preset == "auto":
        raise UsageError("--preset auto needs a model to try the presets on: use it with convert, "
                         "quantize or experiment (their sidecar .json then records the pick)")
    if preset not in PRESETS and preset != "custom":
        raise UsageError(f"unknown preset {preset!r}; choose one of {tuple(PRESETS)}")
    if preset == "custom" and (mean is None or std is None):
        raise UsageError("the custom preset needs both --mean and --std")
    base_mean, base_std = PRESETS.get(preset, PRESETS["unit"])
    if color == "bgr":
        base_mean, base_std = base_mean[::-1], base_std[::-1]
    if channels == 1:
        base_mean = (sum(base_mean) / 3,)
        base_std = (sum(base_std) / 3,)
    if mean is not None or std is not None:
        preset = "custom"
    mean = tuple(float(m) for m in mean) if mean is not None else base_mean
    std = tuple(float(s) for s in std) if std is not None else base_std
    if len(mean) == 1 and channels == 3:
        mean = mean * 3
    if len(std) == 1 and channels == 3:
        std = std * 3
    return PreprocessSpec(
        input_size=(int(input_size[0]), int(input_size[1])),
        preset=preset,
        mean=mean,
        std=std,
        channels=channels,
        color=color,
        **options,
    )
