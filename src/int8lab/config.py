"""User-level options for reading calibration data, as one frozen dataclass.

The CLI fills it from flags; the pipelines resolve it once (with the model's own input, where
there is a model) into a PreprocessSpec and a RepresentativeDataGenerator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.errors import UsageError
from int8lab.model.source import ModelInput
from int8lab.preprocess import PreprocessSpec, resolve_preprocess_spec

DEFAULT_SIZE = (224, 224)
PREPROCESSING_FIELDS = ("input_size", "resize", "crop_pct", "interpolation", "color", "channels",
                        "preset", "mean", "std", "layout", "jpeg_draft")


@dataclass(frozen=True)
class DataOptions:
    dataset_type: str = "auto"
    split: str | None = None
    num_samples: int = 100
    batch_size: int = 1
    seed: int = 42
    strategy: str = "random"
    only_class: str | None = None
    input_size: tuple[int, int] | None = None
    # Preprocessing: None is "not given", so a model's recorded spec (int8lab.sidecar) can fill it.
    resize: str | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    color: str | None = None
    channels: int | None = None
    preset: str | None = None
    mean: str | None = None
    std: str | None = None
    layout: str | None = None
    jpeg_draft: bool | None = None
    override_preprocessing: bool = False
    workers: int | None = None
    quiet: bool = False
    task: str = "auto"
    normalise_boxes: bool = True
    head_precision: str = "auto"
    integer_only: bool = False
    trust_pickle: bool = False
    target: str = "cpu"
    compare_plans: str = "auto"
    metadata: bool = True

    def spec(self, model_input: ModelInput | None = None) -> PreprocessSpec:
        """Resolve the one spec; what the user left open comes from the model, else defaults."""
        size = self.input_size or (model_input.size if model_input else None) or DEFAULT_SIZE
        channels = self.channels or (model_input.channels if model_input else None) or 3
        layout = self.layout or (model_input.layout if model_input else None) or "nhwc"
        return resolve_preprocess_spec(
            size, preset=self.preset or "imagenet", mean=_floats(self.mean, "--mean"),
            std=_floats(self.std, "--std"), channels=channels, color=self.color or "rgb",
            resize=self.resize or "stretch", crop_pct=self.crop_pct or 0.875,
            interpolation=self.interpolation or "bilinear", layout=layout,
            jpeg_draft=True if self.jpeg_draft is None else self.jpeg_draft,
        )

    def given_preprocessing(self) -> dict:
        """The preprocessing flags the user set (the rest may come from a model's recorded spec)."""
        return {name: getattr(self, name) for name in PREPROCESSING_FIELDS if getattr(self, name) is not None}

    def generator(self, data_dir: Path, spec: PreprocessSpec | None = None,
                  **overrides) -> RepresentativeDataGenerator:
        settings = dict(dataset_type=self.dataset_type, num_samples=self.num_samples,
                        batch_size=self.batch_size, seed=self.seed, split=self.split,
                        strategy=self.strategy, only_class=self.only_class, workers=self.workers,
                        progress=not self.quiet)
        settings.update(overrides)
        return RepresentativeDataGenerator(data_dir, spec=spec or self.spec(), **settings)


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise UsageError(f"{flag} takes numbers separated by commas, got {text!r}") from None
