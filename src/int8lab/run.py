"""One job's inputs, resolved once and passed down (as timm resolves a data config once and
builds its transforms from it): the loaded model, the options with ``--preset auto`` and the
data's parts settled, the one preprocessing spec, and each split's index, so that a quantize run
walks every folder once however many steps (calibration, validation, recovery, the report) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from int8lab.config import DataOptions
from int8lab.data.discovery import DatasetIndex, discover, plan_parts
from int8lab.errors import UsageError
from int8lab.model.source import load_model_source
from int8lab.preprocess import PreprocessSpec
from int8lab.sidecar import has_record, source_spec


@dataclass(frozen=True)
class RunContext:
    source: object  # int8lab.model.source: the float model, loaded
    data_dir: Path | None
    opts: DataOptions  # preset resolved; split set to the calibration part of a folder without splits
    spec: PreprocessSpec
    detection: dict | None = None  # --preset auto's evidence
    eval_split: str | None = None  # the held-out split (quantize)
    parts: tuple[str, str] | None = None  # (calibration, held-out) parts of a folder without splits

    @property
    def calibration_split(self) -> str | None:
        return self.opts.split or calibration_split(self.data_dir)

    @cached_property
    def calibration(self) -> DatasetIndex:
        return discover(self.data_dir, self.opts.dataset_type, self.calibration_split)

    @cached_property
    def held_out(self) -> DatasetIndex:
        return discover(self.data_dir, self.opts.dataset_type, self.eval_split)

    def calibration_generator(self, **overrides):
        """The seeded calibration draw of int8lab.data.generator, on the index walked once."""
        return self.opts.generator(self.data_dir, self.spec, split=self.calibration_split, index=self.calibration,
                                   **overrides)


def resolve_run(model, data_dir, opts: DataOptions, eval_split: str | None = None,
                detection: dict | None = None) -> RunContext:
    """``model`` (a path or a loaded source) and the user's options as one job will use them;
    with ``eval_split``, a folder without that split is divided into two seeded parts."""
    if isinstance(model, RunContext):
        return model
    source = load_model_source(model)
    parts = None
    if eval_split is not None and data_dir is not None and not opts.split:
        parts = plan_parts(data_dir, opts.dataset_type, eval_split)
        if parts:
            opts, eval_split = replace(opts, split=parts[0]), parts[1]
    if opts.preset == "auto" and not has_record(model):
        opts, detection = detect_preset(source, data_dir, opts)
    spec = source_spec(model, opts, source.input)
    return RunContext(source, Path(data_dir) if data_dir is not None else None, opts, spec,
                      detection, eval_split, parts)


def detect_preset(source, data_dir, opts: DataOptions) -> tuple[DataOptions, dict]:
    """Resolve ``--preset auto`` on the calibration split (see int8lab.preset_detection)."""
    from int8lab.preset_detection import resolve_auto_preset

    if data_dir is None:
        raise UsageError("--preset auto needs the data (--data) to try the candidates on")
    return resolve_auto_preset(source, data_dir, opts, opts.split or calibration_split(data_dir))


def calibration_split(data_dir) -> str | None:
    """Calibrate on val/ when the data has one (validation then takes test/)."""
    return "val" if data_dir is not None and (Path(data_dir) / "val").is_dir() else None
