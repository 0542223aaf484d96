"""The example detector as a Keras model, for the Keras/SavedModel route: the PyTorch network's
layers and trained weights (``yolo_tiny.pth``) in NHWC, batch norms folded into the convolutions.

Input ``[1, 160, 160, 3]`` float32 RGB in [0, 1], letterboxed (``--preset unit``); output ``[1, 14,
525]`` as the PyTorch model gives it: box centre x, y, width, height in input pixels, then the 10
sigmoid class scores, one column per anchor. Built with Keras' own layers and ``keras.ops``, so
the ``.keras`` file loads without custom objects::

    python examples/detect/yolo_tiny_keras.py out/yolo_tiny.keras   # or a SavedModel directory
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _weights(conv, bn=None, channels=slice(None)):
    """Kernel [kh, kw, in, out] and bias of a torch Conv2d (and the BatchNorm2d after it), for
    output channels ``channels``."""
    weight = conv.weight.detach().numpy().astype(np.float64)
    bias = conv.bias.detach().numpy().astype(np.float64) if conv.bias is not None else np.zeros(len(weight))
    if bn is not None:
        scale = bn.weight.detach().numpy() / np.sqrt(bn.running_var.numpy() + bn.eps)
        weight, bias = weight * scale[:, None, None, None], (bias - bn.running_mean.numpy()) * scale + bn.bias.detach().numpy()
    return weight[channels].transpose(2, 3, 1, 0).astype(np.float32), bias[channels].astype(np.float32)


def _conv(x, conv, bn=None, silu=True, channels=slice(None)):
    """torch's symmetric padding as explicit zero padding: Keras' "same" pads a stride-2
    convolution on one side only."""
    from keras import layers

    kernel, bias = _weights(conv, bn, channels)
    if conv.padding[0]:
        x = layers.ZeroPadding2D(conv.padding[0])(x)
    layer = layers.Conv2D(kernel.shape[-1], conv.kernel_size, conv.stride, activation="silu" if silu else None)
    y = layer(x)
    layer.set_weights([kernel, bias])
    return y


def _block(x, module, **kwargs):
    return _conv(x, module.conv, module.bn, **kwargs)


def _c2f(x, module):
    """C2f's split of its first convolution's output, as that convolution's two halves."""
    from keras import layers

    ys = [_block(x, module.cv1, channels=slice(0, module.c)), _block(x, module.cv1, channels=slice(module.c, None))]
    for bottleneck in module.m:
        y = _block(_block(ys[-1], bottleneck.cv1), bottleneck.cv2)
        ys.append(layers.Add()([ys[-1], y]) if bottleneck.add else y)
    return _block(layers.Concatenate()(ys), module.cv2)


def _sppf(x, module):
    from keras import layers

    ys = [_block(x, module.cv1)]
    for _ in range(3):
        ys.append(layers.MaxPooling2D(module.m.kernel_size, 1, padding="same")(ys[-1]))
    return _block(layers.Concatenate()(ys), module.cv2)


def _head(feats, detect, size: int):
    """Per level the box and class branches, flattened row by row; DFL's expectation and the
    anchor decode as fixed linear maps (xywh = distances x M + anchor, times the stride)."""
    import keras
    from keras import layers

    from yolo_tiny import REG_MAX, STRIDES

    boxes, scores, anchors, strides = [], [], [], []
    for feat, box, cls, stride in zip(feats, detect.cv2, detect.cv3, STRIDES):
        grid = size // stride
        b = _conv(_block(_block(feat, box[0]), box[1]), box[2], silu=False)
        c = _conv(_block(_block(feat, cls[0]), cls[1]), cls[2], silu=False)
        boxes.append(layers.Reshape((grid * grid, 4 * REG_MAX))(b))
        scores.append(layers.Reshape((grid * grid, detect.nc))(c))
        ys, xs = np.meshgrid(np.arange(grid) + 0.5, np.arange(grid) + 0.5, indexing="ij")
        anchors.append(np.stack([xs.ravel(), ys.ravel(), np.zeros(grid * grid), np.zeros(grid * grid)], 1))
        strides.append(np.full((grid * grid, 1), stride))
    count = sum(len(a) for a in anchors)
    bins = layers.Softmax()(layers.Reshape((count, 4, REG_MAX))(layers.Concatenate(axis=1)(boxes)))
    expectation = layers.Dense(1, use_bias=False, trainable=False)
    distances = layers.Reshape((count, 4))(expectation(bins))
    expectation.set_weights([np.arange(REG_MAX, dtype=np.float32)[:, None]])
    to_xywh = layers.Dense(4, use_bias=False, trainable=False)  # rows: left, top, right, bottom
    xywh = to_xywh(distances)
    to_xywh.set_weights([np.array([[-0.5, 0, 1, 0], [0, -0.5, 0, 1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]], np.float32)])
    xywh = keras.ops.multiply(keras.ops.add(xywh, np.concatenate(anchors).astype(np.float32)),
                              np.concatenate(strides).astype(np.float32))
    probabilities = layers.Activation("sigmoid")(layers.Concatenate(axis=1)(scores))
    return layers.Permute((2, 1))(layers.Concatenate()([xywh, probabilities]))


def keras_detector(torch_model, size: int = 160):
    """The Keras twin of a ``yolo_tiny.YoloTiny`` (in eval mode)."""
    import keras
    from keras import layers

    sys.path.insert(0, str(HERE))
    inputs = keras.Input((size, size, 3))
    x = torch_model.stem
    s = _c2f(_block(_block(inputs, x[0]), x[1]), x[2])
    p3 = _c2f(_block(s, torch_model.p3[0]), torch_model.p3[1])
    p4 = _c2f(_block(p3, torch_model.p4[0]), torch_model.p4[1])
    p5 = _sppf(_c2f(_block(p4, torch_model.p5[0]), torch_model.p5[1]), torch_model.p5[2])
    up = lambda t: layers.UpSampling2D(2, interpolation="nearest")(t)  # noqa: E731
    n4 = _c2f(layers.Concatenate()([up(p5), p4]), torch_model.top_down4)
    n3 = _c2f(layers.Concatenate()([up(n4), p3]), torch_model.top_down3)
    n4 = _c2f(layers.Concatenate()([_block(n3, torch_model.down3), n4]), torch_model.bottom_up4)
    n5 = _c2f(layers.Concatenate()([_block(n4, torch_model.down4), p5]), torch_model.bottom_up5)
    return keras.Model(inputs, _head([n3, n4, n5], torch_model.detect, size), name="yolo_tiny")


def main(out: str) -> None:
    import torch

    sys.path.insert(0, str(HERE))
    from yolo_tiny import build_model

    model = build_model()
    model.load_state_dict(torch.load(HERE / "yolo_tiny.pth"))
    keras_model = keras_detector(model.eval())
    if out.endswith(".keras"):
        keras_model.save(out)
    else:
        keras_model.export(out)  # a SavedModel directory


if __name__ == "__main__":
    main(sys.argv[1])
