from __future__ import annotations

import numpy as np
import pytest

from int8lab import RepresentativeDataGenerator
from int8lab.data.tensor_store import RowReader, row_writer


@pytest.fixture(scope="module")
def tensors(fashion_dir):
    """Real preprocessed images: 21 of the example's, 28x28x1."""
    generator = RepresentativeDataGenerator(fashion_dir, num_samples=21, input_size=(28, 28), channels=1,
                                            preset="unit", progress=False)
    return np.stack([tensor for _, tensor in generator.generate_samples()])


def write_in_batches(path, tensors, sizes=(1, 12, 8)):
    with row_writer(path) as write:
        start = 0
        for size in sizes:
            write(tensors[start:start + size])
            start += size
    return path


def test_rows_written_in_batches_load_as_one_array(tmp_path, tensors):
    saved = np.load(write_in_batches(tmp_path / "t.npy", tensors))
    assert saved.dtype == np.float32 and np.array_equal(saved, tensors)


def test_the_reader_gives_rows_slices_picks_and_batches(tmp_path, tensors):
    reader = RowReader(write_in_batches(tmp_path / "t.npy", tensors))
    assert len(reader) == 21 and reader.shape == tensors.shape
    assert np.array_equal(reader[3], tensors[3]) and np.array_equal(reader[-1], tensors[-1])
    assert np.array_equal(reader[5:17], tensors[5:17]) and reader[30:40].shape == (0, 28, 28, 1)
    assert np.array_equal(reader[[7, 2, 7]], tensors[[7, 2, 7]])
    assert np.array_equal(np.stack(list(reader)), tensors)
    assert [len(batch) for batch in reader.batches(8)] == [8, 8, 5]
    with pytest.raises(IndexError):
        reader[21]


def test_rows_read_are_writable_copies(tmp_path, tensors):
    reader = RowReader(write_in_batches(tmp_path / "t.npy", tensors))
    batch = reader[0:4]
    batch += 1
    assert np.array_equal(reader[0:4], tensors[0:4])


def test_a_failed_write_leaves_no_file(tmp_path, tensors):
    path = tmp_path / "t.npy"
    with pytest.raises(RuntimeError), row_writer(path) as write:
        write(tensors[:4])
        raise RuntimeError("the run stopped")
    assert list(tmp_path.iterdir()) == []


def test_rows_of_another_shape_are_refused(tmp_path, tensors):
    with pytest.raises(ValueError, match="rows of shape"), row_writer(tmp_path / "t.npy") as write:
        write(tensors[:2])
        write(tensors[:2, :14])


def test_nothing_written_is_an_empty_array(tmp_path):
    with row_writer(tmp_path / "t.npy"):
        pass
    assert np.load(tmp_path / "t.npy").shape == (0,) and len(RowReader(tmp_path / "t.npy")) == 0


def test_a_truncated_file_is_reported(tmp_path, tensors):
    path = write_in_batches(tmp_path / "t.npy", tensors)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="shorter than its header"):
        RowReader(path)[15:21]
