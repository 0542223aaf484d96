from __future__ import annotations

from collections import Counter

import pytest

from int8lab.data.discovery import discover
from int8lab.data.sampling import sampling_order
from int8lab.errors import UsageError


@pytest.fixture(scope="module")
def index(fashion_dir):
    return discover(fashion_dir)


def test_same_seed_gives_the_same_order(index):
    assert sampling_order(index, seed=7) == sampling_order(index, seed=7)


def test_another_seed_gives_another_order(index):
    assert sampling_order(index, seed=7) != sampling_order(index, seed=8)


def test_order_is_a_permutation_without_replacement(index):
    order = sampling_order(index, "stratified", seed=3)
    assert sorted(order) == list(range(len(index)))


def test_stratified_prefix_has_equal_shares(index):
    first = sampling_order(index, "stratified", seed=1)[:40]
    assert set(Counter(index.labels[i] for i in first).values()) == {4}


def test_only_class_draws_from_that_class_alone(index):
    order = sampling_order(index, seed=1, only_class="sandal")
    assert len(order) == 30
    assert {index.class_names[index.labels[i]] for i in order} == {"sandal"}


def test_unknown_class_names_the_classes(index):
    with pytest.raises(UsageError, match="'sock' not found.*ankle_boot"):
        sampling_order(index, only_class="sock")


def test_stratified_needs_classes(tmp_path, photo):
    photo.save(tmp_path / "a.jpg")
    with pytest.raises(UsageError, match="needs class folders"):
        sampling_order(discover(tmp_path, "folder"), "stratified")
