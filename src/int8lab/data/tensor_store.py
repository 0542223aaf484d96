"""Tensors too many for RAM, on disk as plain ``.npy`` files: written row by row, read by batch.

The lab decodes its images once and scores every variant on them. At ImageNet scale they do not
fit in memory (50,000 x 224x224x3 float32 is 30 GB), and a detector's raw outputs are larger
still. Rows are read with plain file reads, not memory maps, so they pass through the page cache
without adding to the process's resident memory; the files stay ordinary ``np.load``-able arrays.
"""

from __future__ import annotations

import ast
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from int8lab.atomic import atomic_write

_MAGIC = b"\x93NUMPY\x01\x00"  # format 1.0: a header of at most 65,535 bytes
_MAX_COUNT = 10**18  # the widest row count the reserved header must hold


def _header(shape: tuple[int, ...], dtype: np.dtype, size: int | None = None) -> bytes:
    """An .npy 1.0 header for ``shape``, padded to ``size`` bytes (default: room for any count
    of rows, a multiple of 64), so the final count can be written in place at the end."""
    def describe(shape):
        return repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})

    text = describe(shape)
    if size is None:
        widest = len(describe((_MAX_COUNT, *shape[1:])))
        size = -(-(len(_MAGIC) + 2 + widest + 1) // 64) * 64
    length = size - len(_MAGIC) - 2
    return _MAGIC + length.to_bytes(2, "little") + text.ljust(length - 1).encode("latin1") + b"\n"


@contextmanager
def row_writer(path: str | Path, dtype=np.float32):
    """``write(batch)`` appends rows (the leading axis; the first batch sets the row shape); the
    file appears at ``path``, complete, only when the block succeeds (atomic_write)."""
    dtype = np.dtype(dtype)
    row_shape, count, reserved = None, 0, 0
    with atomic_write(path) as handle:

        def write(rows: np.ndarray) -> None:
            nonlocal row_shape, count, reserved
            rows = np.ascontiguousarray(rows, dtype=dtype)
            if row_shape is None:
                row_shape = rows.shape[1:]
                reserved = handle.write(_header((0, *row_shape), dtype))
            if rows.shape[1:] != row_shape:
                raise ValueError(f"{path}: rows of shape {row_shape} expected, got {rows.shape[1:]}")
            handle.write(rows.tobytes())
            count += len(rows)

        yield write
        if row_shape is None:  # nothing written: an empty array
            handle.write(_header((0,), dtype))
            return
        handle.seek(0)
        handle.write(_header((count, *row_shape), dtype, reserved))
        handle.seek(0, 2)


def store_samples(path: str | Path, samples) -> list[int]:
    """The tensors of ``(index, tensor)`` pairs as the rows of ``path``; the indices, in order."""
    indices = []
    with row_writer(path) as write:
        for i, tensor in samples:
            indices.append(i)
            write(tensor[np.newaxis])
    return indices


class RowReader:
    """Rows of an .npy file, read on demand: ``len``, ``reader[i]``, ``reader[a:b]``,
    ``reader[[i, j]]``, iteration and ``batches(n)``, each a fresh writable array; nothing stays
    in memory between reads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version != (1, 0):
                raise ValueError(f"{self.path}: .npy format {version} is not supported, only 1.0")
            length = int.from_bytes(handle.read(2), "little")
            header = ast.literal_eval(handle.read(length).decode("latin1"))
            self.offset = handle.tell()
        if header["fortran_order"]:
            raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported")
        self.dtype = np.dtype(np.lib.format.descr_to_dtype(header["descr"]))
        self.shape = tuple(header["shape"])
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("RowReader reads contiguous rows only (step 1)")
            return self._read(start, max(stop - start, 0))
        if isinstance(key, (list, tuple, np.ndarray)):  # rows picked out: read one by one
            return np.stack([self[k] for k in key]) if len(key) else self._read(0, 0)
        index = int(key)
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        return self._read(index % len(self), 1)[0]

    def __iter__(self):
        for batch in self.batches(64):
            yield from batch

    def batches(self, size: int):
        for start in range(0, len(self), size):
            yield self[start:start + size]

    def _read(self, start: int, count: int) -> np.ndarray:
        out = np.empty((count, *self.shape[1:]), self.dtype)
        if not out.nbytes:
            return out
        with open(self.path, "rb") as handle:
            handle.seek(self.offset + start * self._row_bytes)
            if handle.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise ValueError(f"{self.path} is shorter than its header says (truncated?)")
        return out
