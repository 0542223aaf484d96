"""What int8lab recorded beside a model (``MODEL.tflite.json``), and the preprocessing every
command that reads the model takes from it.

A quantized model only works on tensors made the way its calibration made them, so the recorded
spec is the default wherever the model is read (validate, predict, snippet, bench, and a float
``.tflite`` int8lab wrote when it is converted again). A flag that disagrees with the record is
refused, or with ``--override-preprocessing`` used and named; a model without a record says
which defaults it was given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from int8lab.config import PREPROCESSING_FIELDS, DataOptions
from int8lab.errors import UsageError
from int8lab.model.options import ModelInput
from int8lab.preprocess import PreprocessSpec

# The spec fields a flag sets, as the user types them; crop_pct only matters for a centre crop.
_FLAGS = {"input_size": "--input-size", "resize": "--resize", "crop_pct": "--crop-pct",
          "interpolation": "--interpolation", "color": "--color", "channels": "--channels", "layout": "--layout",
          "jpeg_draft": "--jpeg-draft"}
_NORMALISATION = ("preset", "mean", "std")


def read_sidecar(model_path: str | Path) -> dict:
    """The ``.tflite.json`` int8lab wrote beside a model, or {} for a model from elsewhere."""
    sidecar = Path(f"{model_path}.json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else {}


def recorded_spec(model_path: str | Path) -> PreprocessSpec | None:
    """The preprocessing the sidecar records, or None without one."""
    recorded = read_sidecar(model_path).get("preprocessing")
    return PreprocessSpec.from_dict(recorded) if recorded else None


def has_record(model) -> bool:
    """Whether ``model`` is a path with a recorded preprocessing beside it."""
    return isinstance(model, (str, Path)) and recorded_spec(model) is not None


def saved_spec(model_path: str | Path) -> PreprocessSpec:
    """The recorded preprocessing, or a clear error for a model without a sidecar."""
    spec = recorded_spec(model_path)
    if spec is None:
        raise UsageError(f"{model_path}.json (written by int8lab convert/quantize) is missing, so "
                         f"the preprocessing is unknown; give the preprocessing flags")
    return spec


@dataclass(frozen=True)
class Preprocessing:
    """The spec a command uses, where it came from, and what the user should be told of it."""

    spec: PreprocessSpec
    origin: str  # "recorded" | "recorded, overridden" | "flags" | "defaults" | "given"
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"spec": self.spec.as_dict(), "origin": self.origin, "notes": list(self.notes)}


def resolve_preprocessing(model_path: str | Path, opts: DataOptions,
                          model_input: ModelInput | None = None) -> Preprocessing:
    """The preprocessing for the model at ``model_path``: its sidecar's, with the flags the
    user gave checked against it; without a sidecar, the flags, the model's input (and its
    TFLite Metadata normalisation, for a .tflite), then int8lab's defaults."""
    given = opts.given_preprocessing()
    recorded = recorded_spec(model_path)
    if recorded is None:
        return _unrecorded(Path(model_path), opts, given, model_input)
    if given.get("preset") == "auto":  # the record is what detection found last time
        given.pop("preset")
    merged = _merged(recorded, given)
    differences = _differences(recorded, merged)
    if not differences:
        return Preprocessing(recorded, "recorded")
    said = "; ".join(differences)
    if not opts.override_preprocessing:
        raise UsageError(f"{model_path} was calibrated with other preprocessing than these flags give ({said}; "
                         f"recorded in {Path(model_path).name}.json): drop the flags to use the recorded "
                         f"preprocessing, or add --override-preprocessing to use yours")
    return Preprocessing(merged, "recorded, overridden",
                         (f"preprocessing overridden with --override-preprocessing: {said}; the model was "
                          f"calibrated with the recorded one, so these figures are for inputs it was not "
                          f"calibrated on",))


def source_spec(model_path, opts: DataOptions, model_input: ModelInput | None) -> PreprocessSpec:
    """The spec a float model is calibrated with: the record of a float .tflite int8lab wrote
    (flags checked against it), else what the flags and the model's input resolve to."""
    if has_record(model_path):
        return resolve_preprocessing(model_path, opts, model_input).spec
    return opts.spec(model_input)


def _merged(recorded: PreprocessSpec, given: dict) -> PreprocessSpec:
    """The recorded spec with the user's flags applied, as DataOptions would resolve them."""
    options = {name: getattr(recorded, name) for name in PREPROCESSING_FIELDS if name not in _NORMALISATION}
    options.update(given)
    if not set(given) & {*_NORMALISATION, "color", "channels"}:
        spec = replace(DataOptions(**options).spec(), preset=recorded.preset, mean=recorded.mean, std=recorded.std)
    else:
        if "preset" not in given and (recorded.preset == "custom" or {"mean", "std"} & set(given)):
            options.setdefault("mean", _text(recorded.mean))
            options.setdefault("std", _text(recorded.std))
        elif "preset" not in given:
            options["preset"] = recorded.preset
        spec = DataOptions(**options).spec()
    return replace(spec, pad_value=recorded.pad_value)


def _differences(recorded: PreprocessSpec, merged: PreprocessSpec) -> list[str]:
    """Each flag whose value changes the tensor the model was calibrated on, with both values."""
    found = []
    for name, flag in _FLAGS.items():
        if name == "crop_pct" and merged.resize != "center-crop":
            continue
        ours, theirs = getattr(merged, name), getattr(recorded, name)
        if ours != theirs:
            found.append(f"{flag} {_shown(ours)} where the model has {_shown(theirs)}")
    if (merged.mean, merged.std) != (recorded.mean, recorded.std):
        found.append(f"{_normalisation(merged, True)} where the model has {_normalisation(recorded)}")
    return found


def _normalisation(spec: PreprocessSpec, as_flag: bool = False) -> str:
    name = ("--mean/--std" if as_flag else "custom") if spec.preset == "custom" else \
        ("--preset " if as_flag else "preset ") + spec.preset
    return f"{name} (mean {_shown(spec.mean)}, std {_shown(spec.std)})"


def _unrecorded(model_path: Path, opts: DataOptions, given: dict,
                model_input: ModelInput | None) -> Preprocessing:
    """A model from elsewhere: the user's flags, what the model says of itself, then defaults."""
    from_model = []
    normalisation = None if set(_NORMALISATION) & set(given) else _metadata_normalisation(model_path)
    if normalisation:
        opts = replace(opts, mean=_text(normalisation[0]), std=_text(normalisation[1]))
        from_model.append(f"mean {_shown(normalisation[0])} and std {_shown(normalisation[1])} from its TFLite Metadata")
    spec = opts.spec(model_input)
    sized = "input_size" not in given and model_input is not None and model_input.size
    if sized:
        from_model.append(f"input size {_shown(spec.input_size)} from its input tensor")
    shown = {"input_size": f"input size {_shown(spec.input_size)}", "resize": f"resize {spec.resize}",
             "preset": f"preset {spec.preset} (mean {_shown(spec.mean)}, std {_shown(spec.std)})",
             "color": f"color {spec.color}"}
    defaulted = [text for name, text in shown.items() if name not in given
                 and not (name == "input_size" and sized) and not (name == "preset" and normalisation)]
    if not defaulted and not from_model:
        return Preprocessing(spec, "flags")
    used = (["your flags"] if given else []) + (["the model's " + " and ".join(from_model)] if from_model else []) \
        + ([f"int8lab's defaults: {', '.join(defaulted)}"] if defaulted else [])
    note = (f"{model_path.name} has no int8lab sidecar ({model_path.name}.json) recording its preprocessing; "
            f"used {'; '.join(used)}. If the model was trained otherwise, give its preprocessing flags "
            f"(--preset, --resize, --color ...)")
    return Preprocessing(spec, "flags" if given else "defaults", (note,))


def _metadata_normalisation(model_path: Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Mean and std in [0, 1] units from a .tflite's TFLite Metadata (NormalizationOptions are in
    pixel units), or None."""
    if model_path.suffix != ".tflite" or not model_path.is_file():
        return None
    from int8lab.model.metadata import read_metadata

    found = read_metadata(model_path.read_bytes())
    if not found or not found.get("readable"):
        return None
    try:
        units = found["metadata"]["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"]
        options = next(u["options"] for u in units if "mean" in u.get("options", {}))
    except (KeyError, IndexError, StopIteration):
        return None
    return tuple(m / 255 for m in options["mean"]), tuple(s / 255 for s in options["std"])


def _text(values) -> str:
    return ",".join(repr(float(v)) for v in values)


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        if all(isinstance(v, int) for v in value):
            return "x".join(str(v) for v in value)
        return ",".join(f"{v:.4g}" for v in value)
    return str(value)


def tflite_input(model_path: str | Path) -> ModelInput | None:
    """The image input of a .tflite file (its shape gives size, channels and layout), or None."""
    from int8lab.model.options import image_input
    from int8lab.runtime import LiteRTModel

    model = LiteRTModel(model_path)  # a clear error for a file LiteRT cannot run
    if len(model.interpreter.get_input_details()) != 1 or len(model.input_shape) != 4:
        return None
    return image_input(model.input_shape, Path(model_path))


def validation_split(model_path: str | Path, data_dir: str | Path, dataset_type: str = "auto") -> str | None:
    """The split to validate on when none is given: the one quantize validated this model on
    (for the same data folder: a folder without splits has its held-out part), else the data's
    test split, else what discovery picks."""
    from int8lab.data.discovery import has_split

    recorded = read_sidecar(model_path).get("held_out") or {}
    if recorded.get("data_dir") and Path(recorded["data_dir"]).resolve() == Path(data_dir).resolve():
        return recorded["split"]
    return "test" if has_split(data_dir, dataset_type, "test") else None
