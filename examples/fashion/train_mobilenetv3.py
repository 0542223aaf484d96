"""Train a model that quantizes badly: MobileNetV3-Small (alpha 0.75, hard-swish, squeeze-excite)
at 48x48x3 on the 60,000 Fashion-MNIST training images, on the CPU.

    .venv/bin/python examples/fashion/train_mobilenetv3.py [--source DIR] [--epochs 4]

Input: 48x48x3 float32 in [-1, 1] (int8lab's ``--preset tf``), made from the 28x28 grayscale
images by int8lab's own preprocessing (so training and calibration see identical tensors). No
preprocessing layer inside the model. Writes examples/fashion/mobilenetv3.keras.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from build_data import CLASS_NAMES, find_source, load_training_split

HERE = Path(__file__).resolve().parent
SIZE = (48, 48)


def preprocess(images: np.ndarray) -> np.ndarray:
    from int8lab.imageops import array_to_tensor
    from int8lab.preprocess import resolve_preprocess_spec

    spec = resolve_preprocess_spec(SIZE, preset="tf", channels=3).as_dict()
    return np.stack([array_to_tensor(image, spec, "nhwc") for image in images])


def build_model():
    import keras

    return keras.applications.MobileNetV3Small(
        input_shape=(*SIZE, 3), alpha=0.75, weights=None, classes=len(CLASS_NAMES),
        include_preprocessing=False, dropout_rate=0.1)


def save_for_inference(model, path: Path) -> None:
    """Save the weights in a fresh, uncompiled copy: no optimizer state (two thirds of the file)."""
    clean = build_model()
    clean.set_weights(model.get_weights())
    clean.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=HERE / "mobilenetv3.keras")
    args = parser.parse_args()

    import keras

    keras.utils.set_random_seed(0)
    source = find_source(args.source)
    images, labels = load_training_split(source, "train")
    x, y = preprocess(images), labels
    model = build_model()
    for layer in model.layers:  # Keras' 0.999 needs far more steps than 4 epochs for its moving stats
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=args.epochs, validation_split=0.05, verbose=2)
    test_images, test_labels = load_training_split(source, "t10k")
    _, accuracy = model.evaluate(preprocess(test_images), test_labels, verbose=0)
    print(f"accuracy on the 10,000 official test images: {accuracy:.4f}")
    save_for_inference(model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {model.count_params()} parameters)")


if __name__ == "__main__":
    main()
