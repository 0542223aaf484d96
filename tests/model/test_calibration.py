"""int8lab's one calibration pass gives ai-edge-quantizer's own calibration result, and more."""

from __future__ import annotations

import numpy as np


def test_min_max_are_ai_edge_quantizers_and_means_and_outputs_come_with_them(torch_options, fashion_dir):
    from conftest import TORCH_MODEL

    from int8lab.config import DataOptions
    from int8lab.model.aeq import _quantizer, serving_input
    from int8lab.model.bias_correction import layer_inputs
    from int8lab.model.calibration import calibrate
    from int8lab.model.source import load_model_source
    from int8lab.runtime import LiteRTModel

    source = load_model_source(TORCH_MODEL, torch_options)
    opts = DataOptions(preset="unit", quiet=True, num_samples=12)
    images = [np.asarray(b[0], np.float32) for b in opts.generator(fashion_dir, opts.spec(source.input))()]
    content = source.content
    signature, name = serving_input(content)
    theirs = _quantizer(content, "int8", "minmax").calibrate({signature: [{name: x} for x in images]})
    wanted = layer_inputs(content)
    ours = calibrate(content, images, wanted, frozenset(range(0, 12, 2)))
    assert set(theirs) <= set(ours.qsvs)
    for tensor, qsv in theirs.items():
        for bound in ("min", "max"):
            assert np.allclose(ours.qsvs[tensor][bound], qsv[bound], rtol=1e-6, atol=1e-7), tensor
    assert np.allclose(ours.outputs, LiteRTModel(content).predict(np.concatenate(images)), atol=1e-4)
    assert set(ours.means) == set(wanted)
    runtime = LiteRTModel(content, keep_tensors=True)
    first = sorted(wanted)[0]
    index = next(d["index"] for d in runtime.interpreter.get_tensor_details() if d["name"] == first)
    expected = []
    for x in images[0::2]:
        runtime.invoke(x)
        values = runtime.interpreter.get_tensor(index)
        expected.append(values.reshape(-1, values.shape[-1]).mean(0))
    assert np.allclose(ours.means[first], np.mean(expected, 0), atol=1e-5)
