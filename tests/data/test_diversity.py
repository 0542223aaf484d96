from __future__ import annotations

import numpy as np
from conftest import save_broken_files

from int8lab import RepresentativeDataGenerator
from int8lab.data.discovery import discover
from int8lab.data.diversity import k_center_order, thumbnails


def test_k_center_takes_one_from_each_cluster_first():
    rng = np.random.default_rng(0)
    clusters = [rng.normal(loc, 0.1, size=(20, 4)) for loc in (0.0, 10.0, 20.0)]
    features = np.concatenate(clusters)
    first_three = k_center_order(features, seed=1, count=3)[:3]
    assert sorted(k // 20 for k in first_three) == [0, 1, 2]


def test_order_is_a_seeded_permutation():
    features = np.random.default_rng(2).random((30, 8))
    order = k_center_order(features, seed=5, count=10)
    assert sorted(order) == list(range(30)) and order == k_center_order(features, seed=5, count=10)


def test_undecodable_images_are_never_picked_by_the_greedy_part(tmp_path, photo):
    for k in range(4):
        photo.rotate(90 * k).save(tmp_path / f"p{k}.jpg")
    save_broken_files(tmp_path, photo)
    index = discover(tmp_path, "folder")
    features = thumbnails(index, list(range(len(index))))
    broken = {k for k, f in enumerate(index.files) if f.name in ("truncated.jpg", "empty.png", "not_an_image.jpg")}
    assert np.isnan(features[sorted(broken)]).all()
    assert not broken & set(k_center_order(features, seed=0, count=4)[:4])


def test_diverse_generator_is_deterministic_and_spans_more_classes_than_one(fashion_dir):
    def draw():
        generator = RepresentativeDataGenerator(fashion_dir, num_samples=10, input_size=(28, 28), channels=1,
                                                strategy="diverse", seed=3, progress=False)
        tensors = np.concatenate(list(generator.generate_batches()))
        return tensors, {generator.index.labels[i] for i in generator.selected}

    (first, classes), (second, _) = draw(), draw()
    assert np.array_equal(first, second) and len(classes) >= 5
