"""Atomic writes: the old file or the whole new one, with the mode an ordinary write gives."""

from __future__ import annotations

import os

import pytest

from int8lab.atomic import atomic_write, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = write_text_atomic(tmp_path / "report.md", "old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as handle:
            handle.write("half of the new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_new_file_gets_the_umask_mode_not_a_private_one(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "model.tflite.json", "{}")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = write_text_atomic(tmp_path / "summary.json", "{}")
    path.chmod(0o640)
    write_text_atomic(path, "[]")
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_text() == "[]"
