"""Train the example detector on the CPU and export it the way Ultralytics exports.

    .venv/bin/python examples/detect/train_detector.py [--images 6000] [--epochs 30]

Draws its training images in memory with ``build_data.compose`` (Fashion-MNIST *training* objects
on the backgrounds the held-out split does not use), letterboxes them to 160x160 with int8lab's
own preprocessing, and trains ``yolo_tiny.YoloTiny`` with YOLOv8's recipe in small: a
task-aligned assigner (top 10 anchors per object by score^0.5 x IoU^6), BCE class loss against
the alignment, GIoU box loss and the distribution focal loss. Writes ``yolo_tiny.pth`` (a state
dict for ``--arch examples/detect/yolo_tiny.py:build_model``) and ``yolo_tiny.onnx`` (opset 17,
dynamic batch/height/width axes, as ``yolo export format=onnx dynamic=True`` writes).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from build_data import compose, find_photos, find_source, load_split, split_photos
from yolo_tiny import REG_MAX, STRIDES, build_model, make_anchors

from int8lab.imageops import resize_image

HERE = Path(__file__).resolve().parent
SIZE = 160
PIXELS = {"input_size": (SIZE, SIZE), "resize": "letterbox", "interpolation": "bilinear", "pad_value": 114}


def letterboxed(image, boxes):
    """The image as the model sees it, and its boxes moved the same way."""
    ratio = min(SIZE / image.height, SIZE / image.width)
    pad_x, pad_y = (SIZE - round(image.width * ratio)) // 2, (SIZE - round(image.height * ratio)) // 2
    pixels = np.asarray(resize_image(image, PIXELS))
    moved = boxes.copy()
    moved[:, [1, 3]] = boxes[:, [1, 3]] * ratio + pad_x
    moved[:, [2, 4]] = boxes[:, [2, 4]] * ratio + pad_y
    return pixels, moved


def make_training_set(count: int, seed: int, source, photos):
    objects, classes = load_split(source, "train")
    backgrounds, _ = split_photos(photos)
    rng = np.random.default_rng(seed)
    images, targets = np.empty((count, SIZE, SIZE, 3), np.uint8), []
    for k in range(count):
        images[k], boxes = letterboxed(*compose(rng, backgrounds, objects, classes))
        targets.append(torch.from_numpy(boxes))
    return images, targets


def box_iou(a, b):
    """Pairwise IoU of xyxy boxes: a [M, 4], b [A, 4] -> [M, A]."""
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-7)


def giou(a, b):
    """Elementwise GIoU of xyxy boxes [K, 4]."""
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1) - inter + 1e-7
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).prod(1) + 1e-7
    return inter / union - (hull - union) / hull


class Loss:
    def __init__(self, model):
        self.nc = model.detect.nc
        self.bins = torch.arange(REG_MAX, dtype=torch.float)

    def __call__(self, raw, targets):
        b = raw[0].shape[0]
        anchors, strides = make_anchors(raw, STRIDES)
        flat = torch.cat([r.view(b, raw[0].shape[1], -1) for r in raw], 2).permute(0, 2, 1)
        dist, logits = flat.split((4 * REG_MAX, self.nc), 2)
        probs = dist.view(b, -1, 4, REG_MAX).softmax(3)
        ltrb = probs @ self.bins
        points = anchors * strides
        pred = torch.cat((points - ltrb[..., :2] * strides, points + ltrb[..., 2:] * strides), 2)
        scores = torch.zeros_like(logits)
        box_loss = dfl_loss = torch.zeros(())
        total = 0.0
        for i, target in enumerate(targets):
            if not len(target):
                continue
            cls, gt = target[:, 0].long(), target[:, 1:]
            with torch.no_grad():
                iou = box_iou(gt, pred[i].detach())
                inside = ((points[None] > gt[:, None, :2]) & (points[None] < gt[:, None, 2:])).all(2)
                align = logits[i].detach().sigmoid()[:, cls].T.pow(0.5) * iou.pow(6) * inside
                top = align.topk(min(10, align.shape[1]), 1).indices
                chosen = torch.zeros_like(inside).scatter_(1, top, True) & inside
                owner = torch.where(chosen, iou, torch.full_like(iou, -1)).argmax(0)
                positive = chosen.any(0)
                if not positive.any():
                    continue
                align = align * chosen
                norm = (align / (align.amax(1, keepdim=True) + 1e-9)) * (iou * chosen).amax(1, keepdim=True)
                weight = norm[owner, torch.arange(norm.shape[1])][positive]
                scores[i, positive] = F.one_hot(cls[owner[positive]], self.nc).float() * weight[:, None]
            total += weight.sum()
            gt_pos = gt[owner[positive]]
            box_loss = box_loss + ((1 - giou(pred[i, positive], gt_pos)) * weight).sum()
            grid = (points[positive] / strides[positive])
            sides = torch.cat((grid - gt_pos[:, :2] / strides[positive],
                               gt_pos[:, 2:] / strides[positive] - grid), 1).clamp(0, REG_MAX - 1.01)
            left = sides.long()
            w_left = left + 1 - sides
            logp = dist[i, positive].view(-1, 4, REG_MAX).log_softmax(2)
            dfl = -(logp.gather(2, left[..., None])[..., 0] * w_left
                    + logp.gather(2, (left + 1)[..., None])[..., 0] * (1 - w_left)).mean(1)
            dfl_loss = dfl_loss + (dfl * weight).sum()
        norm = max(float(total), 1.0)
        cls_loss = F.binary_cross_entropy_with_logits(logits, scores, reduction="sum") / norm
        return 7.5 * box_loss / norm + 0.5 * cls_loss + 1.5 * dfl_loss / norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="Fashion-MNIST idx files")
    parser.add_argument("--photos", type=Path, help="folder of background photos")
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=HERE / "yolo_tiny")
    args = parser.parse_args()
    torch.manual_seed(0)
    images, targets = make_training_set(args.images, 0, find_source(args.source), find_photos(args.photos))
    model = build_model()
    loss_fn = Loss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    steps = args.epochs * math.ceil(args.images / args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps, pct_start=0.1)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(args.images)
        running = 0.0
        for k in range(0, args.images, args.batch):
            rows = order[k:k + args.batch]
            batch = torch.from_numpy(images[rows.numpy()]).permute(0, 3, 1, 2).float() / 255
            if torch.rand(()) < 0.5:  # horizontal flip
                batch = batch.flip(3)
                flipped = [t.clone() for t in (targets[r] for r in rows)]
                for t in flipped:
                    t[:, [1, 3]] = SIZE - t[:, [3, 1]]
            else:
                flipped = [targets[r] for r in rows]
            loss = loss_fn(model.detect.raw(model.features(batch)), flipped)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            schedule.step()
            running += float(loss) * len(rows)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {running / args.images:.4f} "
              f"({time.time() - start:.0f} s)", flush=True)
    model.eval()
    torch.save(model.state_dict(), args.out.with_suffix(".pth"))
    torch.onnx.export(model, (torch.zeros(1, 3, SIZE, SIZE),), str(args.out.with_suffix(".onnx")),
                      input_names=["images"], output_names=["output0"], opset_version=17, dynamo=False,
                      dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                    "output0": {0: "batch", 2: "anchors"}})
    print(f"wrote {args.out.with_suffix('.pth')} and {args.out.with_suffix('.onnx')}")


if __name__ == "__main__":
    main()
