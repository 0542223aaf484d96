"""Seeded fuzzing: thousands of mutated real JPEG, PNG and WebP files are each decoded or listed
as skipped with a reason; none crashes the run or hangs it (issue 12)."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from int8lab import imageops
from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.preprocess import resolve_preprocess_spec

CASES_PER_FORMAT = 1200
SPEC = resolve_preprocess_spec((24, 32), preset="unit", resize="letterbox").as_dict()


def seeds(photo: Image.Image) -> dict[str, bytes]:
    small = photo.resize((64, 48))
    encoded = {}
    for fmt in ("JPEG", "PNG", "WEBP"):
        buffer = io.BytesIO()
        small.save(buffer, format=fmt)
        encoded[fmt] = buffer.getvalue()
    return encoded


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One of: flipped bytes, a truncation, a zeroed run, a duplicated run, random bytes inserted."""
    data = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:
        for position in rng.integers(0, len(data), rng.integers(1, 16)):
            data[position] = rng.integers(256)
    elif kind == 1:
        del data[rng.integers(1, len(data)):]
    elif kind == 2:
        start = rng.integers(len(data))
        end = min(len(data), start + rng.integers(1, 64))
        data[start:end] = bytes(end - start)
    elif kind == 3:
        start = rng.integers(len(data))
        data[start:start] = data[start:start + rng.integers(1, 256)]
    else:
        start = rng.integers(len(data))
        data[start:start] = rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8).tobytes()
    return bytes(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_mutated_images_decode_or_are_skipped(tmp_path, photo, fmt):
    rng = np.random.default_rng({"JPEG": 1, "PNG": 2, "WEBP": 3}[fmt])
    original = seeds(photo)[fmt]
    path = tmp_path / f"case.{fmt.lower()}"
    outcomes = {"decoded": 0, "skipped": 0}
    for _ in range(CASES_PER_FORMAT):
        path.write_bytes(mutate(original, rng))
        start = time.perf_counter()
        try:
            tensor = imageops.load_tensor(path, SPEC)
        except imageops.ImageDecodeError as exc:
            assert exc.reason
            outcomes["skipped"] += 1
        else:
            assert tensor.shape == (24, 32, 3) and tensor.dtype == np.float32 and np.isfinite(tensor).all()
            outcomes["decoded"] += 1
        assert time.perf_counter() - start < 5, "one image took over 5 s"
    assert outcomes["decoded"] and outcomes["skipped"]


def test_a_folder_of_mutated_images_is_read_to_the_end(tmp_path, photo):
    rng = np.random.default_rng(7)
    for fmt, data in seeds(photo).items():
        for k in range(100):
            (tmp_path / f"{fmt}_{k}.{fmt.lower()}").write_bytes(mutate(data, rng))
    generator = RepresentativeDataGenerator(tmp_path, "folder", num_samples=None, input_size=(24, 32),
                                            preset="unit", progress=False)
    decoded = list(generator.generate_samples())
    assert len(decoded) + len(generator.errors) == 300
