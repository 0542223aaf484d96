"""The PyTorch example architecture (importable as ``--arch examples/fashion/fashion_torch.py:build_model``).

A compact CNN for 1x28x28 NCHW float32 input in [0, 1] (int8lab's ``--preset unit``); it ends in a
softmax, so its outputs are probabilities like the Keras example's.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class FashionCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(_block(1, 16, 1), _block(16, 32, 2), _block(32, 32, 1),
                                      _block(32, 64, 2), _block(64, 64, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return torch.softmax(self.classifier(x), dim=1)


def build_model(num_classes: int = 10) -> FashionCNN:
    return FashionCNN(num_classes)
