"""The Python API: ``int8lab.quantize``, ``int8lab.validate`` and ``int8lab.convert``, each returning
a Result (the figures, the files written, the report, shown inline in Jupyter). The CLI's
commands are thin layers over these same functions.

    import int8lab
    result = int8lab.quantize("model.keras", data="images/", preset="unit", out="out/")
    result.metrics["top1_agreement"], result.files["model"]

Keyword arguments beyond each function's own are int8lab.config.DataOptions fields (``preset``,
``input_size``, ``resize``, ``target``, ``num_samples``, ``quiet`` ...), the CLI's flags by their
Python names; ``options`` takes a whole DataOptions instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

from int8lab.config import DataOptions
from int8lab.errors import UsageError


@dataclass(frozen=True)
class Result:
    """What a job wrote and measured: ``summary`` is summary.json (quantize), validation.json
    (validate) or the sidecar (convert), as saved."""

    summary: dict
    files: dict[str, Path]

    @property
    def metrics(self) -> dict:
        """The validation figures (quantize, validate); empty for convert."""
        return self.summary.get("validation", self.summary if "num_images" in self.summary else {})

    @property
    def report(self) -> Path | None:
        return self.files.get("report_html")

    def _repr_html_(self) -> str:  # Jupyter shows the report itself
        if self.report is not None and self.report.exists():
            return self.report.read_text()
        return f"<pre>{json.dumps(self.summary.get('tflite', self.summary), indent=1)[:4000]}</pre>"

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        figures = ", ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:6])
        return f"Result({figures}; files: {', '.join(f'{k}={v}' for k, v in self.files.items())})"


def quantize(model, data, out="int8lab_out", *, labels=None, quantize: str = "auto", max_drop: float | None = None,
             min_agreement: float | None = None, eval_split: str = "test", threads: int | None = None,
             onnx: bool = False, allow_double_normalisation: bool = False, arch: str | None = None,
             io_layout: str | None = None, backend: str = "converter", range_estimator: str = "minmax",
             bias_correction: bool = True, options: DataOptions | None = None, **data_options) -> Result:
    """``int8lab quantize``: calibrate on ``data``'s calibration split, convert for the target's
    plan, validate on the held-out split, measure, and write the model and reports into ``out``."""
    from int8lab.pipeline import quantize_job

    opts = _options(options, data_options)
    source = load_source(model, opts, arch, io_layout, backend, range_estimator, bias_correction)
    out = Path(out)
    summary = quantize_job(source, data, out, opts, Path(labels) if labels else None, eval_split,
                           allow_double_normalisation, threads, onnx, max_drop, quantize, min_agreement)
    files = {"model": out / "model_int8.tflite", "sidecar": out / "model_int8.tflite.json",
             "float_model": out / "model_fp32.tflite", "report": out / "report.md", "report_html": out / "report.html",
             "summary": out / "summary.json"}
    if (summary.get("other_plan") or {}).get("measured"):
        files["other_plan_model"] = Path(summary["other_plan"]["model"])
    return Result(summary, files)


def validate(quantized, reference, data, out=None, *, labels=None, arch: str | None = None,
             io_layout: str | None = None, ray_address: str | None = None, shards: int = 4,
             options: DataOptions | None = None, **data_options) -> Result:
    """``int8lab validate``: the quantized model against its float reference on ``data``,
    preprocessed as the model's sidecar records (other preprocessing is refused unless
    ``override_preprocessing=True``)."""
    from int8lab.pipeline import validate_job
    from int8lab.sidecar import resolve_preprocessing, tflite_input
    from int8lab.evalset import read_labels_file

    opts = _options(options, data_options)
    quantized = Path(quantized)
    preprocessing = resolve_preprocessing(quantized, opts, tflite_input(quantized))
    spec = preprocessing.spec
    source = load_source(reference, replace(opts, input_size=spec.input_size, channels=spec.channels), arch, io_layout)
    results = validate_job(quantized, source, data, preprocessing, opts.split, out,
                           read_labels_file(Path(labels)) if labels else None, opts.dataset_type,
                           not opts.quiet, opts.task, ray_address, shards)
    folder = Path(out) if out is not None else quantized.parent / f"{quantized.stem}_validation"
    return Result(results, {"report": folder / "report.md", "report_html": folder / "report.html",
                            "validation": folder / "validation.json"})


def convert(model, output, data=None, *, quantize: str = "auto", labels=None, allow_double_normalisation: bool = False,
            arch: str | None = None, io_layout: str | None = None, backend: str = "converter",
            range_estimator: str = "minmax", bias_correction: bool = True, options: DataOptions | None = None,
            **data_options) -> Result:
    """``int8lab convert``: one .tflite in one mode (the integer ones calibrate on ``data``),
    verified and described in its sidecar (the Result's ``summary``)."""
    from int8lab.pipeline import convert_job

    opts = _options(options, data_options)
    source = load_source(model, opts, arch, io_layout, backend, range_estimator, bias_correction)
    result = convert_job(source, data, Path(output), opts, quantize, Path(labels) if labels else None,
                         allow_double_normalisation)
    summary = {**result.metadata, "warnings": [w.message for w in result.warnings]}
    return Result(summary, {"model": result.path, "sidecar": Path(f"{result.path}.json")})


def load_source(model, opts: DataOptions, arch=None, io_layout=None, backend="converter",
                range_estimator="minmax", bias_correction=True):
    """The user's model with what the options say about it (size and channels help PyTorch)."""
    from int8lab.model.source import ModelOptions, load_model_source

    if hasattr(model, "predict") and hasattr(model, "kind"):  # already loaded
        return model
    return load_model_source(Path(model), ModelOptions(arch, io_layout, opts.input_size, opts.channels, backend,
                                                       range_estimator, opts.trust_pickle, bias_correction))


def _options(options: DataOptions | None, overrides: dict) -> DataOptions:
    known = {f.name for f in fields(DataOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}; the data options are {', '.join(sorted(known))}")
    if "input_size" in overrides and overrides["input_size"] is not None:
        overrides = {**overrides, "input_size": tuple(overrides["input_size"])}
    return replace(options or DataOptions(), **overrides)
