"""Train the example model: a compact CNN on the 60,000 Fashion-MNIST training images, on the CPU.

    .venv/bin/python examples/fashion/train_model.py [--source DIR] [--epochs 6]

Input: 28x28x1 float32 in [0, 1] (int8lab's ``--preset unit``), no normalisation layer inside.
Class index = position of the class folder name in sorted order, the convention int8lab and
Keras' ``image_dataset_from_directory`` use, so the model reads examples/fashion/data directly.
Writes examples/fashion/model.keras (and prints its accuracy on the held-out example split).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from build_data import CLASS_NAMES, find_source, load_training_split

HERE = Path(__file__).resolve().parent


def build_model():
    import keras
    from keras import layers

    def block(x, filters, strides):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = keras.Input((28, 28, 1), name="image")
    x = block(inputs, 24, 1)
    x = block(x, 48, 2)
    x = block(x, 48, 1)
    x = block(x, 96, 2)
    x = block(x, 96, 1)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(len(CLASS_NAMES), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="fashion_cnn")


def save_for_inference(model, path: Path) -> None:
    """Save the weights in an uncompiled copy: no optimizer state (a third of the file size)."""
    clean = build_model()
    clean.set_weights(model.get_weights())
    clean.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=HERE / "model.keras")
    args = parser.parse_args()

    import keras

    keras.utils.set_random_seed(0)
    source = find_source(args.source)
    images, labels = load_training_split(source, "train")
    x = images[..., None].astype(np.float32) / 255.0
    y = labels
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=args.epochs, validation_split=0.05, verbose=2)
    test_images, test_labels = load_training_split(source, "t10k")
    _, accuracy = model.evaluate(test_images[..., None] / 255.0, test_labels, verbose=0)
    print(f"accuracy on the 10,000 official test images: {accuracy:.4f}")
    save_for_inference(model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {model.count_params()} parameters)")


if __name__ == "__main__":
    main()
