"""--preset auto on real models: which preprocessing were they trained with?"""

from __future__ import annotations

from dataclasses import replace

import pytest

from int8lab.config import DataOptions
from int8lab.preset_detection import PreprocessingNotFoundError, resolve_auto_preset, score_candidates
from int8lab.model.source import load_model_source


@pytest.fixture(scope="module")
def keras_source(fashion_model):
    return load_model_source(fashion_model)


def test_labelled_data_picks_the_training_preset_of_the_keras_example(keras_source, fashion_dir):
    opts, evidence = resolve_auto_preset(keras_source, fashion_dir, DataOptions(preset="auto", quiet=True), "val")
    assert (opts.preset, opts.color) == ("unit", "rgb") and evidence["by"] == "accuracy"
    assert evidence["candidates"][0]["accuracy"] > 0.8 > evidence["candidates"][1]["accuracy"]


def test_unlabelled_images_pick_it_by_prediction_variety(keras_source, fashion_dir):
    candidates = score_candidates(keras_source, fashion_dir / "val", DataOptions(dataset_type="folder", quiet=True), None)
    assert candidates[0].preset == "unit" and candidates[0].accuracy is None
    assert max(c.confidence for c in candidates) > candidates[0].confidence  # confidence alone would mislead


def test_pytorch_example_in_nchw_is_detected(torch_options, fashion_dir):
    source = load_model_source(__import__("conftest").TORCH_MODEL, torch_options)
    opts, _ = resolve_auto_preset(source, fashion_dir, DataOptions(preset="auto", quiet=True), "val")
    assert opts.preset == "unit"


def test_wrong_labels_stop_with_a_clear_message(keras_source, fashion_dir, tmp_path):
    shifted = tmp_path / "data" / "val"
    for folder in sorted((fashion_dir / "val").iterdir()):  # every class folder renamed to the next class
        names = sorted(p.name for p in (fashion_dir / "val").iterdir())
        target = shifted / names[(names.index(folder.name) + 1) % len(names)]
        target.mkdir(parents=True)
        for image in sorted(folder.iterdir())[:5]:
            (target / image.name).write_bytes(image.read_bytes())
    with pytest.raises(PreprocessingNotFoundError, match="not the quantization"):
        resolve_auto_preset(keras_source, tmp_path / "data", DataOptions(preset="auto", quiet=True), "val")


def test_auto_preset_is_recorded_in_the_sidecar(tmp_path, fashion_model, fashion_dir):
    from int8lab.pipeline import convert_job

    result = convert_job(fashion_model, fashion_dir, tmp_path / "m.tflite",
                         replace(DataOptions(quiet=True), preset="auto"), "dynamic")
    assert result.metadata["preprocessing"]["preset"] == "unit"
    assert result.metadata["preprocessing_detection"]["picked"] == {"preset": "unit", "color": "rgb"}


def test_mobilenet_trained_on_minus_one_to_one_is_detected(mobilenet_model, fashion_dir):
    source = load_model_source(mobilenet_model)
    opts, _ = resolve_auto_preset(source, fashion_dir, DataOptions(preset="auto", quiet=True), "val")
    assert opts.preset == "tf"


def test_class_folders_that_cannot_be_the_models_classes_count_as_unlabelled(keras_source, fashion_dir, tmp_path):
    """One folder of images for a 10-class model: no '0% accuracy' stop, the pick goes by variety."""
    single = tmp_path / "data" / "val" / "photos"
    single.mkdir(parents=True)
    for image in sorted((fashion_dir / "val").glob("*/*.png"))[::10]:
        (single / f"{image.parent.name}_{image.name}").write_bytes(image.read_bytes())
    opts, evidence = resolve_auto_preset(keras_source, tmp_path / "data", DataOptions(preset="auto", quiet=True), "val")
    assert opts.preset == "unit" and evidence["by"] != "accuracy"
