"""int8lab: a trained vision model in, a correct int8 TFLite/LiteRT model out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("int8lab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

from int8lab.data.export import create_representative_dataset_module, export_npy
from int8lab.data.generator import RepresentativeDataGenerator
from int8lab.errors import DatasetError, Int8labError, NoValidImagesError, UsageError
from int8lab.preprocess import PreprocessSpec, resolve_preprocess_spec

_API = ("Result", "convert", "quantize", "validate")  # int8lab.api, imported on first use (it loads TensorFlow)


def __getattr__(name: str):
    if name in _API:
        from int8lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'int8lab' has no attribute {name!r}")


__all__ = [
    *_API,
    "DatasetError",
    "Int8labError",
    "NoValidImagesError",
    "PreprocessSpec",
    "RepresentativeDataGenerator",
    "UsageError",
    "__version__",
    "create_representative_dataset_module",
    "export_npy",
    "resolve_preprocess_spec",
]
