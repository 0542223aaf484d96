"""int8lab.run: one job's inputs resolved once; each folder walked once however many steps read it."""

from __future__ import annotations

import shutil

import pytest

from int8lab.config import DataOptions
from int8lab.run import RunContext, resolve_run


@pytest.fixture
def walks(monkeypatch):
    """The splits discovered (each a walk of a folder), wherever int8lab discovers one."""
    import int8lab.data.generator as generator
    import int8lab.run as run

    calls = []

    def counting(real):
        def discover(data_dir, dataset_type="auto", split=None):
            calls.append(split)
            return real(data_dir, dataset_type, split)
        return discover

    monkeypatch.setattr(run, "discover", counting(run.discover))
    monkeypatch.setattr(generator, "discover", counting(generator.discover))
    return calls


@pytest.mark.slow
def test_a_quantize_job_walks_each_split_once(tmp_path, fashion_model, fashion_dir, fashion_opts, walks):
    from int8lab.pipeline import quantize_job

    summary = quantize_job(fashion_model, fashion_dir, tmp_path, fashion_opts)
    assert summary["validation"]["num_images"] == 500
    assert sorted(walks) == ["test", "val"]


def test_a_folder_without_splits_is_divided_once_and_the_context_passes_through(tmp_path, fashion_model,
                                                                                fashion_dir, walks):
    flat = tmp_path / "flat"
    shutil.copytree(fashion_dir / "val", flat)
    run = resolve_run(fashion_model, flat, DataOptions(preset="unit", quiet=True), eval_split="test")
    assert isinstance(run, RunContext) and run.parts and run.opts.split == run.parts[0]
    assert run.eval_split == run.parts[1]
    assert len(run.calibration) + len(run.held_out) == sum(1 for p in flat.rglob("*.png"))
    assert len(run.calibration) == len(run.calibration) and len(walks) == 2  # cached: walked once each
    assert resolve_run(run, None, DataOptions()) is run
    assert run.calibration_generator().index is run.calibration
