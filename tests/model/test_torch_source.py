"""PyTorch models in every form a user has them, through litert-torch and ai-edge-quantizer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TORCH_MODEL

from int8lab.errors import UsageError
from int8lab.model.convert import convert
from int8lab.model.source import ModelOptions, load_model_source
from int8lab.model.tflite_info import inspect_tflite
from int8lab.runtime import LiteRTModel


@pytest.fixture(scope="module")
def batch(fashion_dir):
    from int8lab.data.generator import RepresentativeDataGenerator

    nchw = RepresentativeDataGenerator(fashion_dir, num_samples=4, input_size=(28, 28), channels=1,
                                       preset="unit", layout="nchw", progress=False)
    return np.concatenate(list(nchw.generate_batches()))


def test_state_dict_needs_the_architecture(tmp_path):
    with pytest.raises(UsageError, match="--arch"):
        load_model_source(TORCH_MODEL, ModelOptions(input_size=(28, 28)))


def test_state_dict_with_arch_reads_channels_from_the_first_conv(torch_options):
    source = load_model_source(TORCH_MODEL, torch_options)
    assert source.kind == "torch" and source.input.shape == (1, 1, 28, 28) and source.input.layout == "nchw"


def test_module_without_declared_size_asks_for_it(torch_options):
    with pytest.raises(UsageError, match="--input-size"):
        _ = load_model_source(TORCH_MODEL, replace(torch_options, input_size=None)).input


def test_arch_that_does_not_fit_the_state_dict_is_refused(tmp_path):
    factory = tmp_path / "other.py"
    factory.write_text("import torch\ndef net():\n    return torch.nn.Linear(3, 2)\n")
    with pytest.raises(UsageError, match="does not fit"):
        load_model_source(TORCH_MODEL, ModelOptions(arch=f"{factory}:net"))


def test_pt2_declares_its_input(torch_pt2):
    assert load_model_source(torch_pt2).input.shape == (1, 1, 28, 28)


def test_torchscript_and_pickled_module_load(tmp_path, torch_module, batch, torch_options):
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(torch_module, torch.zeros(1, 1, 28, 28)), scripted)
    source = load_model_source(scripted, ModelOptions(input_size=(28, 28)))
    assert source.input.shape == (1, 1, 28, 28)
    with torch.no_grad():
        expected = torch_module(torch.from_numpy(batch)).numpy()
    assert np.allclose(source.predict(batch), expected, atol=1e-6)


def test_nhwc_io_gives_the_same_scores_on_transposed_input(torch_options, batch):
    nchw = load_model_source(TORCH_MODEL, torch_options)
    nhwc = load_model_source(TORCH_MODEL, replace(torch_options, io_layout="nhwc"))
    assert nhwc.input.shape == (1, 28, 28, 1) and nhwc.input.layout == "nhwc"
    assert np.allclose(nhwc.predict(batch.transpose(0, 2, 3, 1)), nchw.predict(batch), atol=1e-6)


@pytest.mark.slow
def test_float_tflite_matches_pytorch(torch_options, batch):
    source = load_model_source(TORCH_MODEL, torch_options)
    tflite = LiteRTModel(source.content)
    assert tflite.input_shape == (1, 1, 28, 28)
    assert np.abs(tflite.predict(batch) - source.predict(batch)).max() < 1e-4


@pytest.mark.slow
def test_int8_from_pt2_is_fully_integer(torch_pt2, fashion_dir):
    from int8lab.config import DataOptions

    source = load_model_source(torch_pt2)
    opts = DataOptions(preset="unit", quiet=True)
    info = inspect_tflite(convert(source, "int8", opts.generator(fashion_dir, opts.spec(source.input),
                                                                 num_samples=20)))
    assert info.fully_integer and info.inputs[0].dtype == "int8" and info.inputs[0].shape == [1, 1, 28, 28]


def test_modes_without_an_aeq_recipe_are_refused(torch_options):
    with pytest.raises(UsageError, match="not available"):
        convert(load_model_source(TORCH_MODEL, torch_options), "fp16")


def test_the_reference_runs_folded_and_nhwc_with_the_module_s_own_outputs(torch_options, torch_module, batch):
    source = load_model_source(TORCH_MODEL, torch_options)
    scores = source.predict(batch)
    module, layout = source._runner
    assert layout == torch.channels_last and module is not source.module
    with torch.no_grad():
        expected = source.module(torch.from_numpy(batch)).numpy()
    assert np.abs(scores - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


def test_a_module_that_needs_nchw_strides_runs_as_it_is(tmp_path, batch):
    """``x.view`` after a convolution fails on NHWC memory: the reference keeps the module as given."""
    factory = tmp_path / "viewing.py"
    factory.write_text("import torch\n"
                       "class Net(torch.nn.Module):\n"
                       "    def __init__(self):\n"
                       "        super().__init__()\n"
                       "        self.conv, self.fc = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 26 * 26, 10)\n"
                       "    def forward(self, x):\n"
                       "        y = self.conv(x)\n"
                       "        return self.fc(y.view(y.shape[0], -1))\n"
                       "def net():\n    return Net()\n")
    weights = tmp_path / "viewing.pth"
    torch.manual_seed(0)
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("viewing", factory)
    viewing = module_from_spec(spec)
    spec.loader.exec_module(viewing)
    model = viewing.net().eval()
    torch.save(model.state_dict(), weights)
    source = load_model_source(weights, ModelOptions(arch=f"{factory}:net", input_size=(28, 28)))
    scores = source.predict(batch)
    assert source._runner == (source.module, torch.contiguous_format)
    with torch.no_grad():
        assert np.allclose(scores, model(torch.from_numpy(batch)).numpy(), atol=1e-6)
