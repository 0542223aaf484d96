from __future__ import annotations

import numpy as np
import pytest
from conftest import save_broken_files, save_odd_files
from PIL import Image

from int8lab import imageops
from int8lab.preprocess import resolve_preprocess_spec


def spec(**options):
    options.setdefault("input_size", (64, 64))
    input_size = options.pop("input_size")
    return resolve_preprocess_spec(input_size, **options).as_dict()


@pytest.fixture
def odd(tmp_path, photo):
    return save_odd_files(tmp_path / "odd", photo)


def test_every_supported_extension_decodes(odd):
    for name, path in odd.items():
        img = imageops.decode_image(path, spec())
        assert img.mode in ("RGB", "L"), name


def test_exif_orientation_is_applied(odd):
    img = imageops.decode_image(odd["rotated.jpg"], spec(jpeg_draft=False))
    assert img.size == (120, 160)  # stored 160x120, displayed upright after a 90 degree turn


def test_rotated_pixels_match_the_turned_original(odd):
    upright = imageops.decode_image(odd["rotated.jpg"], spec(jpeg_draft=False))
    with Image.open(odd["rotated.jpg"]) as raw:
        expected = raw.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    assert np.array_equal(np.asarray(upright), np.asarray(expected))


def test_grayscale_source_becomes_three_equal_channels(odd):
    tensor = imageops.load_tensor(odd["gray.png"], spec(preset="raw"))
    assert tensor.shape == (64, 64, 3)
    assert np.array_equal(tensor[..., 0], tensor[..., 1])
    assert np.array_equal(tensor[..., 1], tensor[..., 2])


def test_grayscale_kept_until_tensor_equals_converting_first(odd):
    deferred = imageops.load_tensor(odd["gray.png"], spec(preset="raw", input_size=(50, 70)))
    with Image.open(odd["gray.png"]) as img:
        early = img.convert("RGB").resize((70, 50), Image.Resampling.BILINEAR)
    assert np.array_equal(deferred, np.asarray(early, dtype=np.float32))


def test_one_channel_from_rgb_uses_pillow_luma(photo, tmp_path):
    path = tmp_path / "rgb.png"
    photo.save(path)
    tensor = imageops.load_tensor(path, spec(channels=1, preset="raw", input_size=photo.size[::-1]))
    assert tensor.shape == (*photo.size[::-1], 1)
    assert np.array_equal(tensor[..., 0], np.asarray(photo.convert("L"), dtype=np.float32))


def test_alpha_is_dropped(odd, photo):
    rgba = imageops.decode_image(odd["rgba.png"], spec())
    la = imageops.decode_image(odd["la.png"], spec())
    assert rgba.mode == "RGB" and la.mode == "L"
    assert np.array_equal(np.asarray(rgba), np.asarray(photo.resize((160, 120))))


def test_palette_image_becomes_rgb(odd):
    assert imageops.decode_image(odd["palette.png"], spec()).mode == "RGB"


def test_cmyk_jpeg_becomes_rgb_close_to_the_original(odd, photo):
    img = imageops.decode_image(odd["cmyk.jpg"], spec(jpeg_draft=False))
    original = np.asarray(photo.resize((160, 120)), dtype=np.float32)
    assert img.mode == "RGB"
    assert np.abs(np.asarray(img, dtype=np.float32) - original).mean() < 8


def test_sixteen_bit_png_is_scaled_not_clipped(odd, photo):
    img = imageops.decode_image(odd["sixteen_bit.png"], spec())
    expected = np.asarray(photo.resize((160, 120)).convert("L"))
    assert np.array_equal(np.asarray(img), expected)


def test_gif_gives_its_first_frame(odd, photo):
    first = np.asarray(imageops.decode_image(odd["animated.gif"], spec()), dtype=np.float32)
    unflipped = np.asarray(photo.resize((160, 120)), dtype=np.float32)
    flipped = unflipped[:, ::-1]
    assert np.abs(first - unflipped).mean() < np.abs(first - flipped).mean()


@pytest.mark.parametrize("name", ["truncated.jpg", "empty.png", "not_an_image.jpg"])
def test_broken_file_raises_decode_error_with_reason(tmp_path, photo, name):
    broken = save_broken_files(tmp_path, photo)[name]
    with pytest.raises(imageops.ImageDecodeError) as info:
        imageops.load_tensor(broken, spec())
    assert info.value.reason


def test_letterbox_keeps_aspect_and_pads_with_114(photo):
    img = imageops.resize_image(photo, spec(resize="letterbox", input_size=(100, 100)))
    pixels = np.asarray(img)
    content_rows = round(photo.size[1] * 100 / photo.size[0])  # 493x356 -> 100x72
    pad_top = (100 - content_rows) // 2
    assert img.size == (100, 100)
    assert (pixels[:pad_top] == 114).all() and (pixels[pad_top + content_rows:] == 114).all()
    assert not (pixels[pad_top + 1] == 114).all()


def test_center_crop_takes_the_middle(photo):
    cropped = imageops.resize_image(photo, spec(resize="center-crop", crop_pct=1.0,
                                                input_size=(356, 356)))
    left = (493 - 356) // 2
    expected = np.asarray(photo)[:, left:left + 356]
    assert np.array_equal(np.asarray(cropped), expected)


def test_center_crop_pct_zooms_in(photo):
    full = imageops.resize_image(photo, spec(resize="center-crop", crop_pct=1.0, input_size=(64, 64)))
    zoomed = imageops.resize_image(photo, spec(resize="center-crop", crop_pct=0.5, input_size=(64, 64)))
    assert full.size == zoomed.size == (64, 64)
    assert not np.array_equal(np.asarray(full), np.asarray(zoomed))


def test_stretch_reaches_the_exact_size(photo):
    assert imageops.resize_image(photo, spec(input_size=(30, 50))).size == (50, 30)


@pytest.mark.parametrize("preset,low,high", [
    ("raw", 0.0, 255.0), ("unit", 0.0, 1.0), ("tf", -1.0, 1.0),
    ("imagenet", (0 - 0.485) / 0.229, (1 - 0.406) / 0.225),
])
def test_preset_maps_pixels_to_its_range(photo, preset, low, high):
    black_white = Image.fromarray(np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8))
    tensor = imageops.to_tensor(black_white, spec(preset=preset))
    assert tensor.min() == pytest.approx(low, abs=1e-5)
    assert tensor.max() == pytest.approx(high, abs=1e-5)


def test_raw_preset_is_exactly_the_pixels(photo):
    assert np.array_equal(imageops.to_tensor(photo, spec(preset="raw")),
                          np.asarray(photo, dtype=np.float32))


def test_imagenet_preset_matches_the_torchvision_formula(photo):
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = (np.asarray(photo, dtype=np.float64) / 255.0 - mean) / std
    assert np.abs(imageops.to_tensor(photo, spec(preset="imagenet")) - expected).max() < 1e-5


def test_bgr_reverses_the_channels(photo):
    rgb = imageops.to_tensor(photo, spec(preset="raw"))
    bgr = imageops.to_tensor(photo, spec(preset="raw", color="bgr"))
    assert np.array_equal(bgr, rgb[..., ::-1])


def test_nchw_is_the_transpose_of_nhwc(photo):
    nhwc = imageops.to_tensor(photo, spec())
    nchw = imageops.to_tensor(photo, spec(layout="nchw"))
    assert nchw.shape == (3, *nhwc.shape[:2])
    assert np.array_equal(nchw, nhwc.transpose(2, 0, 1))


def test_tensor_is_float32_and_contiguous(photo):
    tensor = imageops.to_tensor(photo, spec(layout="nchw", color="bgr"))
    assert tensor.dtype == np.float32 and tensor.flags["C_CONTIGUOUS"]


def test_jpeg_draft_stays_within_tolerance_of_the_full_decode(photo_paths):
    """The documented tolerance: mean |difference| per image at most 4 of 255 pixel levels."""
    exact, fast = spec(preset="raw", input_size=(112, 112), jpeg_draft=False), None
    fast = dict(exact, jpeg_draft=True)
    drafted = 0
    for path in photo_paths:
        diff = np.abs(imageops.load_tensor(path, fast) - imageops.load_tensor(path, exact))
        drafted += bool(diff.any())
        assert diff.mean() <= 4.0, path.name
    assert drafted >= 3  # the draft really was used on these photos


@pytest.mark.parametrize("draft", [True, False])
def test_simplejpeg_gives_the_bits_pillow_gives(photo_paths, odd, monkeypatch, draft):
    """The fast JPEG path must not change a single value, or representative_dataset.py run
    without simplejpeg would calibrate on other tensors (real photos, EXIF turns, gray, CMYK)."""
    assert imageops.simplejpeg is not None, "simplejpeg is a pinned dependency"
    paths = [*photo_paths, *odd.values()]
    options = spec(input_size=(100, 90), jpeg_draft=draft)
    fast = [imageops.load_tensor(path, options) for path in paths]
    monkeypatch.setattr(imageops, "simplejpeg", None)
    for path, tensor in zip(paths, fast):
        assert np.array_equal(tensor, imageops.load_tensor(path, options)), path.name


def test_uint8_array_sample_gets_the_full_preprocessing(photo):
    pixels = np.asarray(photo)
    from_array = imageops.array_to_tensor(pixels, spec(), "nhwc")
    assert np.array_equal(from_array, imageops.to_tensor(imageops.resize_image(photo, spec()), spec()))


def test_float_array_sample_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="already preprocessed"):
        imageops.array_to_tensor(np.zeros((32, 32, 3), np.float32), spec(), "nhwc")
