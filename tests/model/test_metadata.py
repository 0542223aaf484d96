"""TFLite Metadata inside the written model: labels and normalisation travel with it, and the
model computes exactly what it computed without them."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import pytest
from conftest import int8lab

from int8lab.model.metadata import check_same_inference, read_metadata
from int8lab.model.targets import mode_for_target
from int8lab.pipeline import convert_job
from int8lab.preprocess import resolve_preprocess_spec


@pytest.fixture(scope="module")
def with_and_without(tmp_path_factory, fashion_model, fashion_dir, fashion_opts):
    out = tmp_path_factory.mktemp("metadata")
    opts = replace(fashion_opts, num_samples=30)
    return (convert_job(fashion_model, fashion_dir, out / "with.tflite", opts, "int8"),
            convert_job(fashion_model, fashion_dir, out / "without.tflite", replace(opts, metadata=False), "int8"))


def test_labels_and_normalisation_are_inside_the_model(with_and_without):
    written, _ = with_and_without
    found = read_metadata(written.path.read_bytes())
    assert found["associated_files"]["labels.txt"] == written.metadata["labels"]
    image = found["metadata"]["subgraph_metadata"][0]["input_tensor_metadata"][0]
    assert image["process_units"][0]["options"] == {"mean": [0.0], "std": [255.0]}  # 'unit': pixel / 255
    with zipfile.ZipFile(written.path) as packed:  # what an app's file reader sees
        assert packed.read("labels.txt").decode().split() == written.metadata["labels"]


def test_metadata_changes_no_tensor_and_no_output(with_and_without):
    written, plain = with_and_without
    assert read_metadata(plain.path.read_bytes()) is None and plain.metadata.get("tflite_metadata") is None
    check_same_inference(plain.path.read_bytes(), written.path.read_bytes())


def test_inspect_shows_metadata_labels_and_io(with_and_without):
    written, _ = with_and_without
    out = int8lab("inspect", written.path).stdout
    assert "fully integer" in out and "int8 [1, 28, 28, 1], scale" in out
    assert "labels.txt (10 lines)" in out and "sidecar with.tflite.json: mode int8" in out


def test_mediapipe_target_takes_float_io_and_says_why():
    spec = resolve_preprocess_spec((48, 48), preset="tf")
    mode, why = mode_for_target("int8", "mediapipe", spec)
    assert mode == "int8-float-io" and "refuse int8" in why
    assert mode_for_target("int8", "cpu", spec) == ("int8", None)


@pytest.mark.parametrize("options, words", [({"layout": "nchw"}, "--io-layout nhwc"), ({"color": "bgr"}, "RGB")])
def test_mediapipe_target_refuses_what_mediapipe_cannot_feed(options, words):
    from int8lab.errors import UsageError

    with pytest.raises(UsageError, match=words):
        mode_for_target("int8", "mediapipe", resolve_preprocess_spec((48, 48), preset="tf", **options))


def test_mediapipe_target_without_metadata_stops_before_converting(tmp_path, mobilenet_model, fashion_dir):
    from int8lab.config import DataOptions
    from int8lab.errors import UsageError

    opts = DataOptions(preset="tf", quiet=True, target="mediapipe", metadata=False)
    with pytest.raises(UsageError, match="drop --no-metadata"):
        convert_job(mobilenet_model, fashion_dir, tmp_path / "m.tflite", opts, "int8")
    assert not list(tmp_path.iterdir())
