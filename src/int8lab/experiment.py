"""The quantization lab: many conversions of one model, compared on the same held-out images.

A run decodes every calibration and validation image once (cached under ``OUT/cache`` as .npy
files, read back batch by batch, so memory does not grow with the number of images), then
builds, evaluates and saves each variant under ``OUT/variants/NAME``. A variant whose
``metrics.json`` exists is not redone, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from int8lab.atomic import atomic_write, write_text_atomic
from int8lab.checks import check_double_normalisation, check_layout, raise_on_errors
from int8lab.config import DataOptions
from int8lab.data.discovery import DatasetIndex, discover, plan_parts
from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.data.loader import SkippedSource
from int8lab.data.sampling import sampling_order
from int8lab.data.tensor_store import RowReader, row_writer, store_samples
from int8lab.errors import UsageError
from int8lab.model.aeq import QuantizerError
from int8lab.model.convert import CALIBRATED_MODES, INT8_ACTIVATION_MODES, MODES, ConversionError, available_modes
from int8lab.model.source import ModelOptions, load_model_source
from int8lab.preprocess import PreprocessSpec
from int8lab.progress import progress_enabled, track
from int8lab.sidecar import has_record, source_spec
from int8lab.data.annotations import dataset_names
from int8lab.evalset import EvalSet

FLOAT_MODES = ("none", "fp16", "dynamic")
DEFAULT_SIZES = "10,50,100,300"
SINGLE_CLASS = "single-class"
FAILED = "failed.json"  # in a variant's folder: the back end refused to build it (and why)


@dataclass(frozen=True)
class Variant:
    """One model to build: a mode, and for calibrated modes how its calibration set is drawn."""

    name: str
    mode: str
    strategy: str | None = None  # random | stratified | single-class
    size: int | None = None
    seed: int | None = None
    only_class: str | None = None

    @property
    def group(self) -> str:
        """Variants that differ only by seed share a group (mean ± std in the report)."""
        return self.name.rsplit("_s", 1)[0] if self.seed is not None else self.name


@dataclass(frozen=True)
class ExperimentConfig:
    calib_sizes: str = DEFAULT_SIZES  # counts, or fractions (0.1,0.5) of the calibration split
    repeats: int = 3
    imbalanced_class: str | None = None  # default: the first class
    calibration_split: str = "val"
    eval_split: str = "test"
    workers: int = 1
    latency_runs: int = 50
    strategies: tuple[str, ...] = ("random", "stratified", "diverse")
    ray_address: str | None = None  # build the variants as Ray tasks: an address, "auto" or "local"
    cache_dir: str | None = None  # decoded images and float outputs (default OUT/cache)


@dataclass
class CalibrationPool:
    """Every valid calibration image, decoded once; draws follow the generator's seeded orders."""

    index: DatasetIndex
    tensors: RowReader  # one row per valid source, on disk
    rows: dict[int, int]  # source index -> row of ``tensors``

    def draw(self, strategy: str, seed: int, size: int, only_class: str | None = None) -> list[int]:
        """Source indices of a calibration set, exactly as RepresentativeDataGenerator picks them."""
        order = sampling_order(self.index, strategy, seed, only_class, size)
        return [i for i in order if i in self.rows][:size]


@dataclass
class Calibration:
    """A drawn calibration set, usable as ``converter.representative_dataset``; it carries what
    the model's sidecar records (index, selected, seed, strategy)."""

    pool_tensors: RowReader
    rows: list[int]
    index: DatasetIndex
    selected: list[int]
    seed: int
    strategy: str
    spec: PreprocessSpec | None = None  # the input's value range comes from it, not from the draw
    errors: list = field(default_factory=list)
    show_progress: bool = False

    def __call__(self):
        for row in self.rows:
            yield [self.pool_tensors[row][np.newaxis]]


def parse_sizes(text: str, available: int) -> list[int]:
    """``10,50,100`` (counts) or ``0.1,0.5`` (fractions of the split); clipped, deduplicated."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"--calib-sizes takes numbers separated by commas, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"--calib-sizes must be positive, got {text!r}")
    fractions = all(v <= 1 and "." in part for v, part in zip(values, text.split(",")))
    counts = [max(1, round(v * available)) if fractions else int(v) for v in values]
    return sorted({min(c, available) for c in counts})


def build_grid(sizes: list[int], repeats: int, seed: int, single_class: str, class_size: int,
               strategies: tuple[str, ...], modes: tuple[str, ...] = MODES) -> list[Variant]:
    """The default lab: float modes, int16x8, int8 per size x seed x strategy, and int8
    calibrated on one class only; ``modes`` are those the source's backend offers."""
    largest = max(sizes)
    grid = [Variant("fp32" if m == "none" else m, m) for m in FLOAT_MODES if m in modes]
    grid.append(Variant("int16x8", "int16x8", "random", min(100, largest), seed))
    for strategy in strategies:
        for size in sizes:
            for r in range(repeats):
                grid.append(Variant(f"int8_{strategy}_n{size}_s{seed + r}", "int8", strategy, size, seed + r))
    if single_class:
        size = min(largest, class_size)
        grid.append(Variant(f"int8_only-{single_class}_n{size}", "int8", SINGLE_CLASS, size, seed,
                            single_class))
    return grid


def fingerprint(model_path: Path, spec: PreprocessSpec, opts: DataOptions, config: ExperimentConfig,
                data_dir: Path) -> str:
    """What decides the results: a resumed run must match it."""
    from int8lab.model.source import sha256_of

    settings = {"model": sha256_of(model_path), "spec": spec.as_dict(), "data": str(Path(data_dir).resolve()),
                "seed": opts.seed, "dataset_type": opts.dataset_type, "config": asdict(config)}
    for how_it_runs in ("workers", "ray_address", "cache_dir"):  # not what the results depend on
        settings["config"].pop(how_it_runs)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def prepare(model_path: Path, data_dir: Path, out_dir: Path, opts: DataOptions,
            config: ExperimentConfig, labels: list[str] | None = None,
            model_options: ModelOptions | None = None):
    """Checks, then the calibration pool, evaluation set and native outputs: decoded and run
    once, kept in ``OUT/cache`` (or ``config.cache_dir``) for worker processes and resumed runs.
    A cache made with other settings (a shared ``cache_dir``) is made again."""
    source = load_model_source(model_path, model_options)
    spec = source_spec(model_path, opts, source.input)
    raise_on_errors(check_layout(source.input, spec)
                    + check_double_normalisation(source.normalising_layers(), spec))
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = fingerprint(model_path, spec, opts, config, data_dir)
    saved = out_dir / "experiment.json"
    if saved.is_file() and json.loads(saved.read_text())["fingerprint"] != stamp:
        raise UsageError(f"{out_dir} holds an experiment with other settings (model, data, "
                         f"preprocessing or grid); use another -o, or delete it to start again")
    write_text_atomic(saved, json.dumps({"fingerprint": stamp, "model": str(model_path),
                                         "data": str(data_dir), "spec": spec.as_dict(),
                                         "config": asdict(config), "seed": opts.seed}, indent=2) + "\n")
    cache = Path(config.cache_dir) if config.cache_dir else out_dir / "cache"
    index = discover(data_dir, opts.dataset_type, config.calibration_split)
    meta_file = cache / "cache.json"
    if not meta_file.is_file() or json.loads(meta_file.read_text()).get("fingerprint") != stamp:
        _fill_cache(cache, source, spec, data_dir, opts, config, labels, stamp)
    meta = json.loads(meta_file.read_text())
    pool = CalibrationPool(index, RowReader(cache / "calibration.npy"),
                           {i: row for row, i in enumerate(meta["pool_sources"])})
    labels_file = cache / "eval_labels.npy"
    eval_set = EvalSet(RowReader(cache / "eval.npy"), np.load(labels_file) if labels_file.is_file() else None,
                       meta["class_names"], meta["eval_files"],
                       [SkippedSource(**s) for s in meta["eval_skipped"]])
    from int8lab.pipeline import resolve_task

    task, int8_source, _ = resolve_task(source, pool.tensors[:1], spec, opts, "int8",
                                        list(labels or meta["class_names"] or dataset_names(data_dir)))
    return Prepared(source, int8_source, task, spec, pool, eval_set, RowReader(cache / "native_outputs.npy"))


@dataclass(frozen=True)
class Prepared:
    """What every variant is built and scored from; ``int8_source`` is the model the integer
    modes convert (a detector's with normalised boxes, see pipeline.resolve_task)."""

    source: object
    int8_source: object
    task: dict
    spec: PreprocessSpec
    pool: "CalibrationPool"
    eval_set: EvalSet
    native: RowReader  # the float model's outputs, one row per evaluation image

    def source_for(self, mode: str):
        return self.int8_source if mode in INT8_ACTIVATION_MODES else self.source

    def task_for(self, mode: str) -> dict:
        from int8lab.pipeline import float_task

        return self.task if mode in INT8_ACTIVATION_MODES else float_task(self.task)


def _fill_cache(cache: Path, source, spec: PreprocessSpec, data_dir: Path, opts: DataOptions,
                config: ExperimentConfig, labels: list[str] | None, stamp: str) -> None:
    """Decode both splits and run the float model once, streaming each to its .npy file;
    ``cache.json``, written last, marks the cache complete."""
    from int8lab.evalset import predict_batches, store_eval_set

    progress = not opts.quiet
    generator = RepresentativeDataGenerator(data_dir, opts.dataset_type, num_samples=None,
                                            split=config.calibration_split, spec=spec,
                                            progress=progress, workers=opts.workers)
    pool_sources = store_samples(cache / "calibration.npy", generator.generate_samples())
    eval_set = store_eval_set(cache / "eval.npy", data_dir, spec, config.eval_split, labels, opts.dataset_type,
                              progress)
    if set(eval_set.files) & {generator.index.describe(i) for i in pool_sources}:
        raise UsageError("the calibration and evaluation splits share images; give distinct splits")
    with row_writer(cache / "native_outputs.npy") as write:
        for outputs in predict_batches(source, eval_set.tensors, "native model", progress):
            write(outputs)
    if eval_set.labels is not None:
        with atomic_write(cache / "eval_labels.npy") as handle:
            np.save(handle, eval_set.labels)
    write_text_atomic(cache / "cache.json", json.dumps({
        "fingerprint": stamp, "pool_sources": pool_sources, "class_names": list(eval_set.class_names),
        "eval_files": list(eval_set.files), "eval_skipped": [e.as_dict() for e in eval_set.skipped],
        "calibration_skipped": [e.as_dict() for e in generator.errors]}, indent=2) + "\n")


def evaluate_variant(variant: Variant, content: bytes, prepared: Prepared, out_dir: Path) -> dict:
    """Metrics of one built variant against the native model's outputs and the labels, as the
    task scores them, streamed batch by batch over the cached evaluation images."""
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.runtime import LiteRTModel
    from int8lab.tasks.registry import get_task

    info = inspect_tflite(content)
    metrics = {"variant": asdict(variant), "group": variant.group, "size_bytes": len(content),
               "parameters": info.parameter_count, "fully_integer": info.fully_integer,
               "input_dtype": info.inputs[0].dtype}
    task = prepared.task_for(variant.mode)
    metrics.update(get_task(task["name"]).experiment_metrics(prepared.native, LiteRTModel(content), prepared.eval_set,
                                                             task, prepared.spec, out_dir, variant.name))
    return metrics


def build_variant(variant: Variant, prepared: Prepared, out_dir: Path, labels: list[str]) -> dict:
    """Convert, save (model + sidecar, so `int8lab validate` can rerun it), evaluate."""
    from int8lab.model.convert import convert
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.pipeline import model_metadata, write_model
    from int8lab.tasks.detect import head_scorer

    pool = prepared.pool
    calibration = None
    if variant.mode in CALIBRATED_MODES:
        strategy = "random" if variant.strategy == SINGLE_CLASS else variant.strategy
        selected = pool.draw(strategy, variant.seed, variant.size, variant.only_class)
        calibration = Calibration(pool.tensors, [pool.rows[i] for i in selected], pool.index,
                                  selected, variant.seed, variant.strategy, prepared.spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = prepared.source_for(variant.mode)
    try:
        content = convert(source, variant.mode, calibration, None, head_scorer(prepared.task_for(variant.mode)))
    except (ConversionError, QuantizerError) as exc:
        # One mode the model cannot take (int16x8 of hard-swish, say) is a result, not a crash.
        failure = {"variant": asdict(variant), "group": variant.group, "error": str(exc)}
        write_text_atomic(out_dir / FAILED, json.dumps(failure, indent=2) + "\n")
        return failure
    metadata = model_metadata(prepared.source, variant.mode, prepared.spec, inspect_tflite(content), calibration,
                              labels, [])
    metadata["task"] = prepared.task_for(variant.mode)
    write_model(out_dir / "model.tflite", content, metadata)
    metrics = evaluate_variant(variant, content, prepared, out_dir)
    metrics["calibration_count"] = len(calibration.selected) if calibration else 0
    write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


_WORKER_STATE: dict = {}


def _worker_init(model_path, data_dir, out_dir, opts, config, labels, model_options):
    _WORKER_STATE["prepared"] = prepare(model_path, data_dir, out_dir, opts, config, labels, model_options)
    _WORKER_STATE["out_dir"] = out_dir


def _ray_build(variant: Variant, worker_args: tuple) -> dict:
    """A Ray task: prepare once per worker process (from the shared cache), then build."""
    if _WORKER_STATE.get("args") != worker_args:
        _worker_init(*worker_args)
        _WORKER_STATE["args"] = worker_args
    return _worker_build(variant)


def _worker_build(variant: Variant) -> dict:
    prepared = _WORKER_STATE["prepared"]
    return build_variant(variant, prepared, _WORKER_STATE["out_dir"] / "variants" / variant.name,
                         _names(prepared))


def _names(prepared: Prepared) -> list[str]:
    return list(prepared.task.get("names") or prepared.eval_set.class_names)


def run_experiment(model_path, data_dir, out_dir, opts: DataOptions, config: ExperimentConfig,
                   labels: list[str] | None = None, model_options: ModelOptions | None = None) -> dict:
    """Build every variant not built yet, measure latency, and return all the results."""
    from int8lab.benchmark import bench_latencies
    from int8lab.runtime import LiteRTModel

    model_path, data_dir, out_dir = Path(model_path), Path(data_dir), Path(out_dir)
    parts = plan_parts(data_dir, opts.dataset_type, config.eval_split)
    if parts:
        config = replace(config, calibration_split=parts[0], eval_split=parts[1])
    if opts.preset == "auto" and not has_record(model_path):
        from int8lab.run import detect_preset

        opts, _ = detect_preset(load_model_source(model_path, model_options), data_dir,
                                DataOptions(**{**asdict(opts), "split": config.calibration_split}))
    prepared = prepare(model_path, data_dir, out_dir, opts, config, labels, model_options)
    source, spec, pool, eval_set = prepared.source, prepared.spec, prepared.pool, prepared.eval_set
    class_names = _names(prepared)
    single = config.imbalanced_class or (pool.index.class_names[0] if pool.index.class_names else None)
    if single and single not in pool.index.class_names:
        raise UsageError(f"--imbalanced-class {single!r} is not a class here: {list(pool.index.class_names)}")
    class_size = sum(1 for i in pool.rows if pool.index.labels[i] == pool.index.class_names.index(single)) \
        if single else 0
    sizes = parse_sizes(config.calib_sizes, len(pool.rows))
    strategies = tuple(s for s in config.strategies if s != "stratified" or pool.index.class_names)
    grid = build_grid(sizes, config.repeats, opts.seed, single, class_size, strategies, available_modes(source))
    variants_dir = out_dir / "variants"
    todo = [v for v in grid if not any((variants_dir / v.name / name).is_file() for name in ("metrics.json", FAILED))]
    progress = progress_enabled(not opts.quiet)
    worker_args = (model_path, data_dir, out_dir, DataOptions(**{**asdict(opts), "quiet": True}), config, labels,
                   model_options)
    if config.ray_address and todo:
        from int8lab.scale import ray_map

        for _ in track(ray_map(_ray_build, todo, worker_args, config.ray_address), len(todo), "variants (Ray)",
                       progress):
            pass
    elif config.workers > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
        with ProcessPoolExecutor(config.workers, context, initializer=_worker_init,
                                 initargs=worker_args) as executor:
            for _ in track(executor.map(_worker_build, todo), len(todo), "variants", progress):
                pass
    else:
        for variant in track(todo, len(todo), "variants", progress):
            build_variant(variant, prepared, variants_dir / variant.name, class_names)
    built = [v for v in grid if (variants_dir / v.name / "metrics.json").is_file()]
    failed = [json.loads((variants_dir / v.name / FAILED).read_text()) for v in grid if v not in built]
    results = [json.loads((variants_dir / v.name / "metrics.json").read_text()) for v in built]
    models = [LiteRTModel(variants_dir / v.name / "model.tflite") for v in built]
    for row, latency in zip(results, bench_latencies(models, config.latency_runs)):
        row["latency"] = latency
    native_row = native_metrics(prepared, config.latency_runs)
    return {"model": str(model_path), "data": str(data_dir), "spec": spec.as_dict(), "task": prepared.task,
            "calibration_split": config.calibration_split, "eval_split": config.eval_split,
            "calibration_pool": len(pool.rows), "eval_images": len(eval_set.tensors),
            "sizes": sizes, "repeats": config.repeats, "single_class": single,
            "class_names": class_names, "native": native_row, "variants": results, "failed": failed,
            "resumed": len(grid) - len(todo)}


def native_metrics(prepared: Prepared, runs: int) -> dict:
    """The float model as trained, run by its own framework: the reference every variant is held to."""
    import time

    from int8lab.benchmark import summarise
    from int8lab.tasks.registry import get_task
    from int8lab.evalset import Replay

    source, eval_set, native, task = prepared.source, prepared.eval_set, prepared.native, prepared.task_for("none")
    row = {"variant": {"name": "native", "mode": "native"}, "group": "native", "source_kind": source.kind,
           "size_bytes": _size_on_disk(source.path), "parameters": _native_parameters(source),
           **get_task(task["name"]).experiment_metrics(native, Replay(native), eval_set, task, prepared.spec, None,
                                                       "native")}
    sample = eval_set.tensors[:1]
    for _ in range(3):
        source.predict(sample)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        source.predict(sample)
        times.append((time.perf_counter() - start) * 1000)
    row["latency"] = summarise(times, 3, None)
    return row


def _native_parameters(source) -> int | None:
    """Weights of the model as trained (before a converter folds batch norm)."""
    if source.kind in ("keras", "saved_model"):
        return int(source.model.count_params()) if hasattr(source.model, "count_params") else None
    if source.kind == "torch":
        return int(sum(p.numel() for p in source.module.parameters()))
    if source.kind == "onnx":
        return int(sum(b.numel() for b in source.module.buffers()))
    return None


def _size_on_disk(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
