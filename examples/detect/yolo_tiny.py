"""A small YOLOv8-style detector (importable as ``--arch examples/detect/yolo_tiny.py:build_model``).

The same building blocks as Ultralytics' YOLOv8, scaled down for a CPU: Conv-BN-SiLU, C2f blocks
(split, bottlenecks, concat), SPPF, an FPN/PAN neck with nearest-neighbour upsampling, and an
anchor-free decoupled head whose box branch predicts a distribution over ``REG_MAX`` bins per
side (DFL). In inference mode it returns what an Ultralytics export returns: one tensor
``[batch, 4 + classes, anchors]`` of box centre x, y, width, height in input pixels followed by
the sigmoid class scores. The anchor grid is computed from the feature-map shapes at run time,
so an ONNX export with dynamic axes carries Shape/Range/Expand subgraphs, like the real thing.

Input: 1 x 3 x 160 x 160 NCHW float32 RGB in [0, 1] (int8lab's ``--preset unit``), letterboxed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

REG_MAX = 8
STRIDES = (8, 16, 32)
NUM_CLASSES = 10


class Conv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True):
        super().__init__()
        self.cv1, self.cv2 = Conv(c, c, 3), Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = True):
        super().__init__()
        self.c = cout // 2
        self.cv1 = Conv(cin, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, cout, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split((self.c, self.c), 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 5):
        super().__init__()
        hidden = cin // 2
        self.cv1, self.cv2 = Conv(cin, hidden, 1), Conv(hidden * 4, cout, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    """Expected value of each side's distribution over the bins: a fixed 1x1 convolution."""

    def __init__(self, bins: int = REG_MAX):
        super().__init__()
        self.conv = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(bins, dtype=torch.float).view(1, bins, 1, 1)
        self.bins = bins

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.bins, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(feats, strides, offset: float = 0.5):
    """Anchor centres (in grid units) and their strides, from the feature maps' own shapes."""
    points, stride_tensor = [], []
    for feat, stride in zip(feats, strides):
        _, _, h, w = feat.shape
        sx = torch.arange(end=w, dtype=feat.dtype) + offset
        sy = torch.arange(end=h, dtype=feat.dtype) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_tensor.append(torch.full((h * w, 1), stride, dtype=feat.dtype))
    return torch.cat(points), torch.cat(stride_tensor)


class Detect(nn.Module):
    def __init__(self, nc: int, channels: tuple[int, ...]):
        super().__init__()
        self.nc, self.no = nc, nc + 4 * REG_MAX
        c2, c3 = max(16, channels[0] // 4, 4 * REG_MAX), max(channels[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * REG_MAX, 1))
                                 for c in channels)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1))
                                 for c in channels)
        self.dfl = DFL()
        for box, cls, stride in zip(self.cv2, self.cv3, STRIDES):  # YOLOv8's prior: few objects a cell
            box[-1].bias.data[:] = 1.0
            cls[-1].bias.data[:] = math.log(5 / nc / (160 / stride) ** 2)

    def raw(self, feats):
        """Per level: [batch, 4 * REG_MAX + classes, h, w] (what the training loss reads)."""
        return [torch.cat((box(f), cls(f)), 1) for f, box, cls in zip(feats, self.cv2, self.cv3)]

    def forward(self, feats):
        raw = self.raw(feats)
        b = raw[0].shape[0]
        anchors, strides = (t.transpose(0, 1) for t in make_anchors(raw, STRIDES))
        flat = torch.cat([r.view(b, self.no, -1) for r in raw], 2)
        box, cls = flat.split((4 * REG_MAX, self.nc), 1)
        lt, rb = self.dfl(box).chunk(2, 1)
        x1y1, x2y2 = anchors.unsqueeze(0) - lt, anchors.unsqueeze(0) + rb
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
        return torch.cat((xywh, cls.sigmoid()), 1)


class YoloTiny(nn.Module):
    def __init__(self, nc: int = NUM_CLASSES, w: tuple[int, ...] = (16, 24, 48, 64, 96)):
        super().__init__()
        self.stem = nn.Sequential(Conv(3, w[0], 3, 2), Conv(w[0], w[1], 3, 2), C2f(w[1], w[1]))
        self.p3 = nn.Sequential(Conv(w[1], w[2], 3, 2), C2f(w[2], w[2]))
        self.p4 = nn.Sequential(Conv(w[2], w[3], 3, 2), C2f(w[3], w[3]))
        self.p5 = nn.Sequential(Conv(w[3], w[4], 3, 2), C2f(w[4], w[4]), SPPF(w[4], w[4]))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4 = C2f(w[4] + w[3], w[3], shortcut=False)
        self.top_down3 = C2f(w[3] + w[2], w[2], shortcut=False)
        self.down3 = Conv(w[2], w[2], 3, 2)
        self.bottom_up4 = C2f(w[2] + w[3], w[3], shortcut=False)
        self.down4 = Conv(w[3], w[3], 3, 2)
        self.bottom_up5 = C2f(w[3] + w[4], w[4], shortcut=False)
        self.detect = Detect(nc, (w[2], w[3], w[4]))

    def features(self, x):
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        n4 = self.top_down4(torch.cat((self.up(p5), p4), 1))
        n3 = self.top_down3(torch.cat((self.up(n4), p3), 1))
        n4 = self.bottom_up4(torch.cat((self.down3(n3), n4), 1))
        n5 = self.bottom_up5(torch.cat((self.down4(n4), p5), 1))
        return [n3, n4, n5]

    def forward(self, x):
        return self.detect(self.features(x))


def build_model(num_classes: int = NUM_CLASSES) -> YoloTiny:
    return YoloTiny(num_classes)
