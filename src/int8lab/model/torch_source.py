"""PyTorch models in: a ``torch.export`` program (.pt2), TorchScript, a whole pickled module, or a
state dict with ``--arch``. They reach LiteRT through litert-torch (float .tflite) and are
quantized by ai-edge-quantizer, calibrated with int8lab's data (``int8lab[torch]``).
"""

from __future__ import annotations

import copy
import pickle
import warnings
import importlib
import importlib.util
import tempfile
import zipfile
from functools import cached_property
from pathlib import Path

import numpy as np

from int8lab.errors import UsageError
from int8lab.progress import phase
from int8lab.model.options import ModelInput, ModelOptions, image_input

TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".ckpt", ".torchscript", ".ptl")
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")
TORCH_BATCH = 4  # images a forward pass with more than one thread (see TorchSource.run_batch)


def import_torch():
    try:
        import torch
    except ImportError:
        raise UsageError("PyTorch models need the torch extra: pip install 'int8lab[torch]'") from None
    return torch


def _channels_last_wrapper(module):
    """NHWC in, NCHW inside: the model keeps its weights, the device feeds HWC pixels."""
    torch = import_torch()

    class ChannelsLastIO(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.permute(0, 3, 1, 2))

        def train(self, mode: bool = True):
            """The inner module is already in inference mode, and a torch.export module refuses
            to be switched."""
            self.training = mode
            return self

    return ChannelsLastIO(module).eval()


def _first_output(out) -> np.ndarray:
    """A module's output as an array: the first of a tuple or dict (a detector's predictions)."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    elif isinstance(out, dict):
        out = next(iter(out.values()))
    return out.numpy()


def build_from_arch(arch: str):
    """``package.module:function``, ``path/to/file.py:function`` or ``torchvision:name``."""
    if ":" not in arch:
        raise UsageError(f"--arch takes module:function (e.g. mypkg.models:resnet18), got {arch!r}")
    where, name = arch.rsplit(":", 1)
    if where == "torchvision":
        try:
            import torchvision.models
        except ImportError:
            raise UsageError("--arch torchvision:... needs torchvision installed") from None
        return torchvision.models.get_model(name, weights=None)
    if where.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(where).stem, where)
        if spec is None or not Path(where).is_file():
            raise UsageError(f"--arch: {where} does not exist")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise UsageError(f"--arch: cannot import {where}: {exc}") from None
    factory = getattr(module, name, None)
    if factory is None:
        raise UsageError(f"--arch: {where} has no {name}")
    return factory()


class TorchSource:
    """A PyTorch model as the float reference; ``content`` is its float .tflite."""

    kind = "torch"

    def __init__(self, path: str | Path, options: ModelOptions | None = None):
        self.path = Path(path)
        self.options = options or ModelOptions()
        if not self.path.exists():
            raise UsageError(f"model {self.path} does not exist")
        self.torch = import_torch()
        self.static_batch = False  # exported programs are traced for one batch size
        self._declared_shape, self.module = self._load()
        if self.options.io_layout == "nhwc":
            self.module = _channels_last_wrapper(self.module)

    def _load(self):
        """(declared input shape or None, module in inference mode)."""
        torch = self.torch
        if self.path.suffix.lower() == ".pt2":
            program = torch.export.load(str(self.path))
            args = program.example_inputs[0] if program.example_inputs else ()
            shape = tuple(args[0].shape) if args else None
            self.static_batch = True
            return shape, program.module()
        if zipfile.is_zipfile(self.path) and any("/code/" in n for n in zipfile.ZipFile(self.path).namelist()):
            from torch._export.converter import TS2EPConverter  # TorchScript -> torch.export

            script = torch.jit.load(str(self.path), map_location="cpu").eval()
            shape = self._shape_from_options(script)
            self.static_batch = True
            return shape, TS2EPConverter(script, (torch.zeros(shape),)).convert().module()
        try:
            with warnings.catch_warnings():  # torch warns of pickle protocols before it refuses them
                warnings.simplefilter("ignore", UserWarning)
                loaded = torch.load(self.path, map_location="cpu", weights_only=not self.options.trust_pickle)
        except pickle.UnpicklingError:
            raise UsageError(f"{self.path} holds pickled Python objects (a whole module, say), and unpickling "
                             f"can run any code: if you trust the file, pass --trust-pickle; or save a state "
                             f"dict (model.state_dict()) and give --arch") from None
        except ModuleNotFoundError as exc:
            raise UsageError(f"{self.path} is a pickled module whose class lives in {exc.name!r}: make that "
                             f"importable (PYTHONPATH), or save a state dict and give --arch") from None
        except Exception as exc:  # torch raises several unpickling errors
            raise UsageError(f"cannot load {self.path} with torch.load: {str(exc).splitlines()[0]}") from None
        if isinstance(loaded, torch.nn.Module):
            return None, loaded.eval()
        if isinstance(loaded, dict):
            state = next((loaded[k] for k in STATE_DICT_KEYS if isinstance(loaded.get(k), dict)), loaded)
            if self.options.arch is None:
                raise UsageError(f"{self.path} holds a state dict; name the architecture with "
                                 f"--arch module:function (or torchvision:<name>)")
            module = build_from_arch(self.options.arch)
            missing, unexpected = module.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise UsageError(f"the state dict does not fit --arch {self.options.arch}: missing "
                                 f"{list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
            return None, module.eval()
        raise UsageError(f"{self.path} holds a {type(loaded).__name__}, not a module or a state dict")

    @cached_property
    def input(self) -> ModelInput:
        shape = self._declared_shape or self._shape_from_options(self.module)
        if len(shape) != 4:
            raise UsageError(f"{self.path}: expected one 4-D image input, got shape {shape}")
        batch, channels, height, width = shape
        if self.options.io_layout == "nhwc":
            return ModelInput((1, height, width, channels), "nhwc")
        return image_input((1, channels, height, width), self.path)

    def _shape_from_options(self, module) -> tuple[int, ...]:
        """A module does not declare its input size: take the flags, and the channels the first
        convolution takes (its 4-D weight is out x in x kh x kw)."""
        if self.options.input_size is None:
            raise UsageError(f"{self.path} does not record its input size; give --input-size H W")
        first = next((p for p in module.parameters() if p.dim() == 4), None)
        channels = self.options.channels or (int(first.shape[1]) if first is not None else 3)
        return (1, channels, *self.options.input_size)

    def normalising_layers(self) -> list[str]:
        return []

    def with_module(self, module) -> "TorchSource":
        """The same source around another module (a rewritten graph): the copy runs and converts
        ``module``; the original stays the float reference."""
        clone = copy.copy(self)
        clone.__dict__.pop("content", None)
        clone.module, clone._runner = module, None
        clone.static_batch = True  # an exported graph is traced for one batch size
        return clone

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Outputs for a batch of any size, run in chunks of ``run_batch`` images."""
        step = 1 if self.static_batch else self.run_batch()
        if len(batch) > step:
            return np.concatenate([self.predict(batch[i:i + step]) for i in range(0, len(batch), step)])
        inputs = self.torch.from_numpy(np.ascontiguousarray(batch, np.float32))
        if self._runner is None:
            self._runner = self._inference_module(inputs)
        module, layout = self._runner
        with self.torch.inference_mode():
            return _first_output(module(inputs.contiguous(memory_format=layout)))

    _runner = None  # (module, memory format) the reference runs, chosen on the first batch

    def _inference_module(self, inputs):
        """The module as a CPU runs it fastest, with the same outputs: each convolution's batch
        norm folded into it (torch.fx) and NHWC memory, oneDNN's own layout (torchvision's
        MobileNetV2 at one thread: 20.4 -> 12.4 ms an image; outputs within 1e-5). A form is kept
        only where it traces, runs and gives the module's own outputs on the first batch (within
        1e-4 of their largest value); else the module runs as it is."""
        torch = self.torch
        with torch.inference_mode():
            expected = _first_output(self.module(inputs))
        tolerance = 1e-4 * max(1.0, float(np.abs(expected).max(initial=0)))
        if self.static_batch or inputs.dim() != 4:
            return self.module, torch.contiguous_format
        for module in self._nhwc_forms():
            try:
                with torch.inference_mode():
                    out = _first_output(module(inputs.contiguous(memory_format=torch.channels_last)))
            except Exception:  # noqa: BLE001 - a reshape that needs NCHW strides, say
                continue
            if out.shape == expected.shape and float(np.abs(out - expected).max(initial=0)) <= tolerance:
                return module, torch.channels_last
        return self.module, torch.contiguous_format

    def _nhwc_forms(self):
        """Copies of the module on NHWC memory, one at a time: batch norms folded, then as it is."""
        try:
            from torch.fx.experimental.optimization import fuse

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fused = fuse(self.module)  # a copy
        except Exception:  # noqa: BLE001 - a module torch.fx cannot trace
            fused = None
        if fused is not None:
            yield fused.to(memory_format=self.torch.channels_last)
            del fused
        yield copy.deepcopy(self.module).to(memory_format=self.torch.channels_last)

    def run_batch(self) -> int:
        """The batch PyTorch runs fastest on a CPU: large batches spill its caches. Measured on
        torchvision's MobileNetV2 (AMD EPYC, 2 cores, one process at a time),
        ms an image at batch 1 / 4 / 64: one thread (a Ray worker's) 18.7 / 23.7 / 62.5, two
        threads 22.4 / 16.4 / 41.9; folded and NHWC (``_inference_module``), at one thread
        beside another job: 12.4 / 12.4 at batch 1 / 4, 22.4 at 16."""
        return 1 if self.torch.get_num_threads() == 1 else TORCH_BATCH

    @cached_property
    def content(self) -> bytes:
        """The float .tflite, by litert-torch (the calibration and every mode start from it)."""
        from int8lab.model.convert import ConversionError, stdout_to_devnull

        try:
            import litert_torch
        except ImportError:
            raise UsageError("PyTorch models need the torch extra: pip install 'int8lab[torch]'") from None
        sample = self.torch.zeros(self.input.shape, dtype=self.torch.float32)
        with tempfile.TemporaryDirectory() as tmp, stdout_to_devnull(), phase("float .tflite (litert-torch)"):
            target = Path(tmp) / "model.tflite"
            try:
                litert_torch.convert(self.module, (sample,)).export(str(target))
            except Exception as exc:  # litert-torch raises many lowering errors
                raise ConversionError(f"litert-torch could not convert {self.path}: "
                                      f"{str(exc).strip().splitlines()[0]}") from None
            return target.read_bytes()

    def export_onnx(self, path: Path) -> Path:
        """The full-precision model as ONNX, beside the .tflite (as the seed export tool did)."""
        import logging

        from int8lab.model.convert import stdout_to_devnull

        sample = self.torch.zeros(self.input.shape, dtype=self.torch.float32)
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed": fine
        with stdout_to_devnull():
            self.torch.onnx.export(self.module, (sample,), str(path), input_names=["image"],
                                   output_names=["scores"], dynamo=True, external_data=False)
        return path
