from __future__ import annotations

import pytest

from int8lab.errors import UsageError
from int8lab.predict import predict_images
from int8lab.sidecar import saved_spec


def test_top_k_with_labels_from_the_sidecar(fashion_int8, fashion_dir):
    images = sorted((fashion_dir / "test" / "trouser").iterdir())[:5]
    results = predict_images(fashion_int8.path, images, saved_spec(fashion_int8.path), top_k=3)
    assert [len(r["top"]) for r in results] == [3] * 5
    assert sum(r["top"][0]["label"] == "trouser" for r in results) >= 4
    assert all(r["top"][0]["score"] >= r["top"][1]["score"] for r in results)


def test_unreadable_image_is_reported_not_fatal(tmp_path, fashion_int8, fashion_dir):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    good = next((fashion_dir / "test" / "bag").iterdir())
    results = predict_images(fashion_int8.path, [tmp_path / "broken.png", good], saved_spec(fashion_int8.path))
    assert "error" in results[0] and results[1]["top"][0]["label"] == "bag"


def test_model_without_sidecar_needs_the_preprocessing_flags(tmp_path, fashion_int8):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(fashion_int8.path.read_bytes())
    with pytest.raises(UsageError, match="preprocessing is unknown"):
        saved_spec(bare)
