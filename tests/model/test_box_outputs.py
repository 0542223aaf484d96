"""The detector output rewrite: boxes divided by the input size, nothing else changed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from int8lab.model.box_outputs import BoxRewriteError, channel_ranges, normalise_boxes

torch = pytest.importorskip("torch")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "detect"


def example_detector():
    spec = importlib.util.spec_from_file_location("yolo_tiny", EXAMPLE / "yolo_tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model().eval()
    model.load_state_dict(torch.load(EXAMPLE / "yolo_tiny.pth", weights_only=True))
    return model


@pytest.fixture(scope="module")
def detector():
    return example_detector()


@pytest.fixture(scope="module")
def sample():
    return torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(0))


def test_boxes_are_divided_by_the_input_size(detector, sample):
    rewritten = normalise_boxes(detector, sample, (160, 160), 1)
    with torch.no_grad():
        before, after = detector(sample).numpy(), rewritten(sample).numpy()
    assert np.allclose(after[:, :4] * 160, before[:, :4], atol=1e-3)
    assert np.array_equal(after[:, 4:], before[:, 4:])


def test_a_transposed_output_is_rewritten_through_the_permute(detector, sample):
    class Transposed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = detector

        def forward(self, x):
            return self.inner(x).permute(0, 2, 1)

    rewritten = normalise_boxes(Transposed().eval(), sample, (160, 160), 2)
    assert float(rewritten(sample)[..., :4].max()) <= 2.0


def test_an_output_not_made_by_a_concat_is_refused(sample):
    class Plain(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3), keepdim=False)[:, :, None].expand(1, 3, 20) * 100

    with pytest.raises(BoxRewriteError):
        normalise_boxes(Plain().eval(), sample, (160, 160), 1)


def test_channel_ranges_tell_boxes_from_scores(detector, sample):
    with torch.no_grad():
        ranges = channel_ranges(detector(sample).numpy(), 1)
    assert ranges.box_max > 50 and ranges.score_max <= 1 and ranges.ratio > 50


class PerScaleHeads(torch.nn.Module):
    """YOLOv3-style: each scale decodes [1, 3, h, w, 4 + 1 + classes] itself, and the last
    concatenation joins the scales' anchors, not boxes and scores."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3, 3 * 9, 1, stride=s) for s in (8, 16))

    def forward(self, x):
        heads = []
        for conv, stride in zip(self.convs, (8, 16)):
            raw = conv(x)
            n, _, h, w = raw.shape
            raw = raw.reshape(n, 3, 9, h, w).permute(0, 1, 3, 4, 2)
            boxes = torch.sigmoid(raw[..., :4]) * stride * 4
            scores = torch.sigmoid(raw[..., 4:5]) * torch.sigmoid(raw[..., 5:])
            heads.append(torch.cat([boxes, scores], -1).permute(0, 4, 1, 2, 3).reshape(n, 8, -1))
        return torch.cat(heads, 2)


def test_per_scale_heads_joined_over_anchors_get_each_scale_rewritten():
    model, sample = PerScaleHeads().eval(), torch.rand(1, 3, 64, 64)
    rewritten = normalise_boxes(model, sample, (64, 64), 1)
    with torch.no_grad():
        before, after = model(sample).numpy(), rewritten(sample).numpy()
    assert np.allclose(after[:, :4] * 64, before[:, :4], atol=1e-4) and np.array_equal(after[:, 4:], before[:, 4:])
