"""Load the user's float model and read what it takes: input size, channels, layout, scaling."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np

from int8lab.errors import UsageError
from int8lab.model.options import RANGE_ESTIMATORS, ModelInput, ModelOptions, image_input  # noqa: F401 (re-exported)

NORMALISING_LAYERS = ("Rescaling", "Normalization")




class KerasSource:
    """A .keras / .h5 file or a SavedModel folder, run in TensorFlow as the float reference."""

    backend = "converter"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise UsageError(f"model {self.path} does not exist")
        suffix = self.path.suffix.lower()
        if self.path.is_dir():
            self.kind = "saved_model"
        elif suffix in (".keras", ".h5", ".hdf5"):
            self.kind = "keras"
        else:
            raise UsageError(f"{self.path}: expected a .keras/.h5 file, a SavedModel folder, a float "
                             f".tflite, a PyTorch file (.pt2/.pt/.pth) or an .onnx file")

    @cached_property
    def model(self):
        """The loaded model: a keras.Model, or a SavedModel's serving function."""
        import tensorflow as tf

        try:
            if self.kind == "keras":
                import keras

                return keras.models.load_model(self.path, compile=False)
            loaded = tf.saved_model.load(str(self.path))
        except Exception as exc:  # Keras and TF raise ValueError, OSError, their own errors
            raise UsageError(f"{self.path} is not a readable {'Keras model' if self.kind == 'keras' else 'SavedModel'}: "
                             f"{_first_line(exc)}") from None
        if "serving_default" not in loaded.signatures:
            raise UsageError(f"{self.path} has no serving_default signature")
        return loaded

    @cached_property
    def input(self) -> ModelInput:
        return image_input(tuple(self._input_spec().shape), self.path)

    def _input_spec(self):
        if self.kind == "keras":
            inputs = self.model.inputs
            if len(inputs) != 1:
                raise UsageError(f"{self.path}: int8lab takes models with one image input, got {len(inputs)}")
            return inputs[0]
        specs = self.model.signatures["serving_default"].structured_input_signature[1]
        if len(specs) != 1:
            raise UsageError(f"{self.path}: int8lab takes models with one image input, got {len(specs)}")
        return next(iter(specs.values()))

    def normalising_layers(self) -> list[str]:
        """Rescaling/Normalization layers in the model: signs it normalises its own input."""
        if self.kind != "keras":
            return []
        return [layer.name for layer in self.model.layers
                if type(layer).__name__ in NORMALISING_LAYERS]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self.kind == "keras":
            return np.asarray(self.model(batch, training=False))
        function = self.model.signatures["serving_default"]
        name = next(iter(function.structured_input_signature[1]))
        outputs = function(**{name: batch})
        return np.asarray(next(iter(outputs.values())))

    def tflite_converter(self):
        import tensorflow as tf

        if self.kind == "saved_model":
            return self._saved_model_batch_of_one()
        return tf.lite.TFLiteConverter.from_keras_model(self._batch_of_one())

    def _saved_model_batch_of_one(self):
        """The SavedModel's serving signature traced for a batch of 1 (see ``_batch_of_one``)."""
        import tensorflow as tf

        signature = self.model.signatures["serving_default"]
        name, spec = next(iter(signature.structured_input_signature[1].items()))
        if spec.shape[0] == 1:
            return tf.lite.TFLiteConverter.from_saved_model(str(self.path))
        fixed = tf.TensorSpec((1, *spec.shape[1:]), spec.dtype, name=name)
        function = tf.function(lambda x: signature(**{name: x})).get_concrete_function(fixed)
        return tf.lite.TFLiteConverter.from_concrete_functions([function], self.model)

    def _batch_of_one(self):
        """The Keras model with its batch fixed to 1, weights shared. With the batch left open, the
        converter keeps each Reshape's shape arithmetic (SHAPE, STRIDED_SLICE, PACK...), which
        XNNPACK refuses and ai-edge-quantizer leaves in float: the example detector in Keras
        ran 300 ops in 8 XNNPACK partitions instead of 245 in 5. A subclassed model, which Keras
        cannot clone, converts as it is."""
        import keras

        spec = self._input_spec()
        if spec.shape[0] == 1:
            return self.model
        try:
            fixed = keras.Input(batch_shape=(1, *spec.shape[1:]), dtype=spec.dtype, name=spec.name)
            clone = keras.models.clone_model(self.model, input_tensors=fixed)
        except Exception:  # noqa: BLE001 (Keras raises ValueError, TypeError... for models it cannot clone)
            return self.model
        clone.set_weights(self.model.get_weights())
        return clone


class TFLiteSource:
    """A float .tflite: run by the LiteRT interpreter, quantized by ai-edge-quantizer."""

    kind = "tflite"

    def __init__(self, path: str | Path):
        from int8lab.runtime import LiteRTModel

        from int8lab.model.aeq import with_signature

        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"model {self.path} does not exist")
        self.runtime = LiteRTModel(self.path.read_bytes())  # refuses what LiteRT cannot read, clearly
        self.content = with_signature(self.path.read_bytes())
        if np.dtype(self.runtime.input["dtype"]) != np.float32:
            raise UsageError(f"{self.path} is already quantized (its input is "
                             f"{np.dtype(self.runtime.input['dtype']).name}); give the float model")

    @cached_property
    def input(self) -> ModelInput:
        shape = tuple(int(d) if d > 0 else None for d in self.runtime.input["shape_signature"])
        return image_input(shape, self.path)

    def normalising_layers(self) -> list[str]:
        return []  # a flatbuffer keeps no layer names worth trusting

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.runtime.predict(batch)


def load_model_source(path, options: ModelOptions | None = None):
    """The user's float model, whatever its format (a source object passes through)."""
    if hasattr(path, "kind"):
        return path
    options = options or ModelOptions()
    if options.io_layout not in (None, "nchw", "nhwc"):
        raise UsageError(f"--io-layout must be nchw or nhwc, got {options.io_layout!r}")
    if options.backend not in ("converter", "aeq"):
        raise UsageError(f"--backend must be converter or aeq, got {options.backend!r}")
    if options.range_estimator not in RANGE_ESTIMATORS:
        raise UsageError(f"--range-estimator must be one of {tuple(RANGE_ESTIMATORS)}, got {options.range_estimator!r}")
    source = _open_source(Path(path), options)
    source.range_estimator = options.range_estimator
    source.bias_correction = options.bias_correction
    return source



def _open_source(path: Path, options: ModelOptions):
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return TFLiteSource(path)
    if suffix == ".onnx":
        from int8lab.model.onnx_source import OnnxSource

        return OnnxSource(path, options)
    from int8lab.model.torch_source import TORCH_SUFFIXES, TorchSource

    if suffix in TORCH_SUFFIXES:
        return TorchSource(path, options)
    source = KerasSource(path)
    source.backend = options.backend
    return source


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def sha256_of(path: str | Path) -> str:
    """Hash of a file, or of every file in a folder (SavedModel), in sorted order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
