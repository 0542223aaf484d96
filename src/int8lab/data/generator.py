"""RepresentativeDataGenerator: the user's images as the float model's calibration tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from int8lab import imageops
from int8lab.data.discovery import DatasetIndex, discover
from int8lab.data.loader import SkippedSource, ordered_map
from int8lab.data.sampling import sampling_order
from int8lab.errors import DatasetError, NoValidImagesError
from int8lab.preprocess import PreprocessSpec, resolve_preprocess_spec
from int8lab.progress import progress_enabled, track


@dataclass(frozen=True)
class ScanResult:
    """Which sources decode, after trying every one of them."""

    valid: tuple[int, ...]
    errors: tuple[SkippedSource, ...]


class RepresentativeDataGenerator:
    """Seeded, streaming calibration data drawn from a folder of images or an array file.

    Discovery happens at construction (cheap: it only lists files). Decoding happens while
    batches are drawn, in parallel threads; a file that cannot be decoded is skipped, recorded in
    ``errors`` and replaced by the next one in the seeded order.

    ``shard=(k, n)`` keeps the k-th of n interleaved parts of the order (a Ray task's share).

    ``spec`` (a PreprocessSpec) may be given whole; otherwise ``input_size`` and the keyword
    ``preprocessing`` options (preset, mean, std, channels, color, resize, crop_pct,
    interpolation, layout, pad_value, jpeg_draft) are resolved into one.
    """

    def __init__(
        self,
        data_dir: str | Path,
        dataset_type: str = "auto",
        num_samples: int | None = 100,
        batch_size: int = 1,
        input_size: tuple[int, int] = (224, 224),
        seed: int = 42,
        *,
        split: str | None = None,
        strategy: str = "random",
        only_class: str | None = None,
        workers: int | None = None,
        progress: bool | None = None,
        progress_label: str = "calibration images",
        spec: PreprocessSpec | None = None,
        shard: tuple[int, int] | None = None,
        index: DatasetIndex | None = None,
        **preprocessing,
    ):
        """``index``: the split already discovered (int8lab.run walks each folder once)."""
        if batch_size < 1:
            raise DatasetError(f"batch size must be at least 1, got {batch_size}")
        if num_samples is not None and num_samples < 1:
            raise DatasetError(f"num_samples must be at least 1 (or None for all), got {num_samples}")
        self.spec = spec if spec is not None else resolve_preprocess_spec(input_size, **preprocessing)
        self._pixel_spec = self.spec.as_dict()  # imageops takes a plain mapping
        self.index: DatasetIndex = index if index is not None else discover(data_dir, dataset_type, split)
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.strategy = strategy
        self.only_class = only_class
        self.workers = workers
        self.show_progress = progress_enabled(progress)
        self.progress_label = progress_label
        self.order = sampling_order(self.index, strategy, seed, only_class, num_samples, workers)
        if shard is not None:  # (k, n): every n-th source from the k-th, for one of n workers
            self.order = self.order[shard[0]::shard[1]]
        self.errors: list[SkippedSource] = []
        self.selected: list[int] = []
        self._known_bad: dict[int, str] = {}  # source index -> why it could not be decoded

    # -- drawing tensors ------------------------------------------------------------------------

    def generate_samples(self):
        """Yield ``(source_index, tensor)`` for each selected sample, in the seeded order.

        Afterwards ``selected`` lists the sources used and ``errors`` the ones skipped.
        """
        wanted = len(self.order) if self.num_samples is None else min(self.num_samples, len(self.order))
        self.errors, self.selected = [], []
        results = ordered_map(self._load, (i for i in self.order if i not in self._known_bad), self.workers)
        stream = track(self._usable(results), wanted, self.progress_label, self.show_progress)
        try:
            for i, tensor in stream:
                self.selected.append(i)
                yield i, tensor
                if len(self.selected) == wanted:
                    break
        finally:
            stream.close()
            results.close()
        if not self.selected:
            raise NoValidImagesError(self._nothing_valid_message())

    def generate_batches(self):
        """Yield float32 arrays of ``batch_size`` samples (the last may be smaller)."""
        batch = []
        for _, tensor in self.generate_samples():
            if self.batch_size == 1:
                yield tensor[np.newaxis]  # a view: no copy for the converter's usual batch of one
                continue
            batch.append(tensor)
            if len(batch) == self.batch_size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    def first_batch(self) -> np.ndarray:
        """The first batch, drawn quietly: what pre-flight checks look at before converting."""
        shown, self.show_progress = self.show_progress, False
        try:
            return next(self.generate_batches())
        finally:
            self.show_progress = shown

    def generate_tflite_batches(self):
        """Yield ``[batch]``: what ``TFLiteConverter.representative_dataset`` expects.

        The batch is float32 in the float model's layout and scale, also when the converted
        model will have int8/uint8 inputs: the converter runs these tensors through the *float*
        graph to record each tensor's range, so uint8 pixels here would calibrate every scale
        wrongly (and silently) by the factor between the two scales.
        """
        for batch in self.generate_batches():
            yield [batch]

    def __call__(self):
        """So the generator itself can be set as ``converter.representative_dataset``."""
        return self.generate_tflite_batches()

    # -- inspection -----------------------------------------------------------------------------

    @cached_property
    def scan(self) -> ScanResult:
        """Decode every candidate once, to count valid images and list the broken ones."""
        if self.index.array_path is not None:
            return ScanResult(tuple(range(len(self.index))), ())
        decode = lambda i: imageops.decode_image(self.index.files[i], self._pixel_spec)  # noqa: E731
        valid, errors = [], []
        results = ordered_map(decode, range(len(self.index)), self.workers)
        for i, result in track(results, len(self.index), "checking images", self.show_progress):
            if isinstance(result, imageops.ImageDecodeError):
                self._known_bad[i] = result.reason
                errors.append(SkippedSource(self.index.describe(i), result.reason))
            else:
                valid.append(i)
        return ScanResult(tuple(valid), tuple(errors))

    def get_statistics(self) -> dict:
        """The summary of what calibration would use (decodes every candidate once)."""
        scan = self.scan
        valid = set(scan.valid)
        usable = [i for i in self.order if i in valid]
        count = len(usable) if self.num_samples is None else min(self.num_samples, len(usable))
        return {
            "dataset_type": self.index.dataset_type,
            "data_dir": str(self.index.root),
            "image_dir": str(self.index.image_dir) if self.index.image_dir else None,
            "split": self.index.split,
            "total_files": len(self.index),
            "total_images": len(scan.valid),
            "num_samples": count,
            "batch_size": self.batch_size,
            "num_batches": math.ceil(count / self.batch_size),
            "input_size": list(self.spec.input_size),
            "input_shape": list(self.spec.input_shape(self.batch_size)),
            "strategy": self.strategy,
            "seed": self.seed,
            "only_class": self.only_class,
            "class_counts": self.index.class_counts(scan.valid),
            "sample_class_counts": self.index.class_counts(usable[:count]),
            "preprocessing": self.spec.as_dict(),
            "errors": [e.as_dict() for e in scan.errors],
        }

    def print_summary(self, console=None) -> dict:
        """Print the statistics as a table (to ``console``, default stdout); return them."""
        from int8lab.report.console import print_data_summary

        stats = self.get_statistics()
        print_data_summary(stats, console)
        return stats

    # -- internals ------------------------------------------------------------------------------

    def _load(self, i: int) -> np.ndarray:
        if self.index.array_path is None:
            return imageops.load_tensor(self.index.files[i], self._pixel_spec)
        try:
            return imageops.array_to_tensor(self._array[i], self._pixel_spec, self.index.array_layout)
        except ValueError as exc:
            raise DatasetError(f"{self.index.array_path}: {exc}") from None

    @cached_property
    def _array(self) -> np.ndarray:
        return np.load(self.index.array_path, mmap_mode="r", allow_pickle=False)

    def _usable(self, results):
        """``(index, tensor)`` in the seeded order; what fails to decode is recorded in
        ``errors``, and what failed before (in ``scan`` or an earlier draw) is not decoded again:
        a folder of 100,000 broken files is read once, not once per pass."""
        for i in self.order:
            if i in self._known_bad:
                self.errors.append(SkippedSource(self.index.describe(i), self._known_bad[i]))
                continue
            _, result = next(results)
            if isinstance(result, imageops.ImageDecodeError):
                self._known_bad[i] = result.reason
                self.errors.append(SkippedSource(self.index.describe(i), result.reason))
                continue
            yield i, result

    def _nothing_valid_message(self) -> str:
        where = self.index.image_dir or self.index.root
        if not self.order:
            what = f"no {self.only_class!r} images" if self.only_class else "no images"
            return (f"{what} found in {where} (dataset type {self.index.dataset_type}); "
                    f"looked for {', '.join(sorted(imageops.IMAGE_EXTENSIONS))}")
        return (f"none of the {len(self.errors)} image files in {where} could be decoded; "
                f"first problem: {self.errors[0].path}: {self.errors[0].reason}")
