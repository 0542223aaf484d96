from __future__ import annotations

import numpy as np

from int8lab.sidecar import saved_spec
from int8lab.runtime import LiteRTModel


def test_inputs_are_quantized_with_the_model_scale_and_zero_point(fashion_int8):
    model = LiteRTModel(fashion_int8.path)
    values = np.array([0.0, 0.25, 1.0, 2.0], np.float32)  # 2.0 lies outside [0, 1]: clipped
    assert model.quantize_input(values).tolist() == [-128, -64, 127, 127]


def test_outputs_are_dequantized_to_probabilities(fashion_int8, fashion_dir, fashion_opts):
    model = LiteRTModel(fashion_int8.path)
    generator = fashion_opts.generator(fashion_dir, saved_spec(fashion_int8.path), num_samples=3)
    batch = np.concatenate(list(generator.generate_batches()))
    scores = model.predict(batch)
    assert scores.dtype == np.float32 and scores.shape == (3, 10)
    assert np.allclose(scores.sum(axis=1), 1, atol=0.05)


def test_threads_are_recorded(fashion_int8):
    assert LiteRTModel(fashion_int8.path, threads=2).threads == 2
