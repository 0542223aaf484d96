"""The CPU plan on TF's converter route (int8lab.model.converter_plan), on the example models."""

import numpy as np
import pytest

from int8lab.config import DataOptions
from int8lab.model.convert import tf_convert
from int8lab.model.converter_plan import int8_weights, logits_chain
from int8lab.model.source import load_model_source
from int8lab.runtime import LiteRTModel, delegation


@pytest.fixture(scope="module")
def mobilenet(mobilenet_model, fashion_dir):
    source = load_model_source(mobilenet_model)
    opts = DataOptions(preset="tf", quiet=True, num_samples=32)
    return source, opts.generator(fashion_dir, opts.spec(source.input), split="val")


@pytest.mark.slow
def test_every_op_runs_in_xnnpack_and_the_logits_stay_apart(mobilenet):
    """MobileNetV3-Small: hard-swish and softmax, which XNNPACK refuses in int8, run in float
    inside it (one partition, nothing on the built-in kernels); its logits keep int8 weights."""
    source, generator = mobilenet
    notes = {}
    content = tf_convert(source, "int8-float-io", generator, notes)
    runs = delegation(content)
    assert runs.fallback == () and runs.partitions == 1
    assert set(notes["float_for_xnnpack"]["ops"]) == {"HARD_SWISH", "SOFTMAX"}
    assert notes["float_logits"]["ops"][-1] == "CONV_2D"
    plain = tf_convert(source, "int8", generator)
    assert len(content) < 1.02 * len(plain)  # the float logits layer's weights stayed int8
    model = LiteRTModel(content)
    assert model.input["dtype"] == np.float32 and model.output["dtype"] == np.float32


def test_int8_weights_keep_a_layer_close_at_a_quarter_of_the_size(fashion_fp32_tflite):
    content = fashion_fp32_tflite.read_bytes()
    chain = logits_chain(content)
    assert chain[0][0] == "SOFTMAX" and chain[-1][0] == "FULLY_CONNECTED"
    hybrid = int8_weights(content, [name for _, name in chain])
    assert len(hybrid) < len(content)
    images = np.random.default_rng(0).random((8, 28, 28, 1), np.float32)
    float_out, hybrid_out = LiteRTModel(content).predict(images), LiteRTModel(hybrid).predict(images)
    assert np.abs(float_out - hybrid_out).max() < 0.02
    assert (float_out.argmax(1) == hybrid_out.argmax(1)).all()
