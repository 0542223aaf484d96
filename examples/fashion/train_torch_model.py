"""Train the PyTorch example model on the 60,000 Fashion-MNIST training images, on the CPU.

    .venv/bin/python examples/fashion/train_torch_model.py [--source DIR] [--epochs 5]

Same data, labels (sorted class-folder order) and input scale ([0, 1]) as the Keras example.
Writes examples/fashion/model_torch.pth, a state dict for ``fashion_torch.py:build_model``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from build_data import find_source, load_training_split
from fashion_torch import build_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "model_torch.pth")
    args = parser.parse_args()
    torch.manual_seed(0)
    source = find_source(args.source)
    images, labels = load_training_split(source, "train")
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 4e-3, epochs=args.epochs,
                                                   steps_per_epoch=-(-len(x) // 128))
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), 128):
            batch = order[start:start + 128]
            probabilities = model(x[batch])
            loss = torch.nn.functional.nll_loss(torch.log(probabilities + 1e-8), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}: loss {total / len(x):.4f}", flush=True)
    model.eval()
    test_images, test_labels = load_training_split(source, "t10k")
    with torch.no_grad():
        predictions = model(torch.from_numpy(test_images[:, None].astype(np.float32) / 255.0)).argmax(1)
    accuracy = float((predictions.numpy() == test_labels).mean())
    print(f"accuracy on the 10,000 official test images: {accuracy:.4f}")
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, "
          f"{sum(p.numel() for p in model.parameters())} parameters)")


if __name__ == "__main__":
    main()
