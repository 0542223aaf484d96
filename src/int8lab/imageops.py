"""Turn one image (a file or a pixel array) into one float32 model-input tensor.

This module is the single source of truth for decoding and preprocessing. It imports only numpy
and Pillow (and simplejpeg when installed) and nothing from int8lab, because `int8lab data module`
embeds its source verbatim in a standalone ``representative_dataset.py``: the tensors that file
yields are then bit-identical to the ones int8lab calibrates with. ``spec`` is a plain mapping
(``PreprocessSpec.as_dict()``).
"""

import math
import os

import numpy as np
from PIL import Image, ImageOps

try:  # libjpeg-turbo without Pillow's per-call overhead: the same pixels, faster (see decode_jpeg)
    import simplejpeg
except ImportError:
    simplejpeg = None

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".mpo"}
)

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageDecodeError(Exception):
    """A file that cannot be turned into an image; ``reason`` says why, for the skip report."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def draft_side(spec):
    """Smallest side a JPEG may be DCT-downscaled to and still feed the final resize.

    Each mode of resize first scales the image to at most ``max(H, W)`` (``/ crop_pct`` for
    centre-crop) on its longer output side, so a draft whose both sides reach that size only
    discards detail the resize would discard anyway. Both sides are asked for because EXIF
    rotation may swap them after decoding.
    """
    side = max(spec["input_size"])
    if spec["resize"] == "center-crop":
        side = side / spec["crop_pct"]
    return int(math.ceil(side))


def decode_image(path, spec):
    """Open an image file as 8-bit 'L' or 'RGB', upright per EXIF.

    Grayscale, palette, alpha (dropped), CMYK, 1-bit and 16-bit images are all converted; GIF and
    MPO give their first frame. Anything unreadable raises ImageDecodeError with a reason.
    Grayscale sources stay 'L' (see ``to_channels``).
    """
    try:
        if os.path.getsize(path) == 0:
            raise ImageDecodeError("empty file (0 bytes)")
        with Image.open(path) as img:
            if spec["jpeg_draft"] and img.format in ("JPEG", "MPO"):
                side = draft_side(spec)
                img.draft(None, (side, side))
            img = decode_jpeg(path, img) or img
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no copy when already upright
            return to_channels(img, spec["channels"])
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ImageDecodeError(reason) from None


def decode_jpeg(path, opened):
    """The pixels Pillow would decode for a plain JPEG, through simplejpeg; None to let Pillow.

    Both run libjpeg-turbo with the same DCT and upsampling. simplejpeg is asked for exactly the
    size Pillow's draft chose (it would otherwise pick finer M/8 scales) and, in strict mode,
    raises on any libjpeg warning, where Pillow then gives its own verdict. The tensors are
    bit-identical with and without simplejpeg (tested on every shared photo).
    """
    if simplejpeg is None or opened.format != "JPEG" or opened.mode not in ("RGB", "L"):
        return None
    width, height = opened.size  # after draft: the size Pillow would decode to
    try:
        with open(path, "rb") as handle:
            pixels = simplejpeg.decode_jpeg(
                handle.read(), colorspace="RGB" if opened.mode == "RGB" else "GRAY",
                min_height=height, min_width=width,
            )
    except (ValueError, OSError):
        return None
    if pixels.shape[:2] != (height, width):
        return None
    img = Image.fromarray(pixels[:, :, 0] if opened.mode == "L" else pixels, opened.mode)
    img.info.update(opened.info)  # EXIF and XMP: the orientation exif_transpose reads
    return img


def to_channels(img, channels):
    """Convert any Pillow mode to 8-bit 'L' or 'RGB'.

    A grayscale image stays 'L' even for channels=3: resizing one channel is cheaper, and
    ``to_tensor`` then repeats it, which gives exactly the values of converting first.
    """
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        # 16-bit data scales to 8 bits; Pillow's own convert("L") would clip at 255 instead.
        if img.mode != "F" and (img.mode != "I" or values.max(initial=0) > 255):
            values = values / 257.0
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    target = "L" if channels == 1 or img.mode in ("L", "LA", "1") else "RGB"
    if img.mode != target:
        img = img.convert(target)
    return img


def resize_image(img, spec):
    """Bring a decoded image to ``spec['input_size']`` by stretch, letterbox or centre-crop."""
    out_h, out_w = spec["input_size"]
    resample = RESAMPLING[spec["interpolation"]]
    w, h = img.size
    mode = spec["resize"]
    if mode == "stretch":
        return img if (w, h) == (out_w, out_h) else img.resize((out_w, out_h), resample)
    if mode == "letterbox":
        ratio = min(out_h / h, out_w / w)
        new_w, new_h = max(1, round(w * ratio)), max(1, round(h * ratio))
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), resample)
        fill = spec["pad_value"] if img.mode == "L" else (spec["pad_value"],) * 3
        canvas = Image.new(img.mode, (out_w, out_h), fill)
        canvas.paste(img, ((out_w - new_w) // 2, (out_h - new_h) // 2))
        return canvas
    if mode == "center-crop":
        ratio = max(out_h / h, out_w / w) / spec["crop_pct"]
        new_w, new_h = max(out_w, round(w * ratio)), max(out_h, round(h * ratio))
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), resample)
        left, top = (new_w - out_w) // 2, (new_h - out_h) // 2
        return img.crop((left, top, left + out_w, top + out_h))
    raise ValueError(f"unknown resize mode {mode!r}")


def to_tensor(img, spec):
    """Pixels to the model's float32 input: channel order, (pixel/255 - mean) / std, layout."""
    pixels = np.asarray(img)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] != spec["channels"]:
        pixels = np.repeat(pixels, spec["channels"], axis=2)
    if spec["color"] == "bgr":
        pixels = pixels[:, :, ::-1]
    values = pixels.astype(np.float32)  # a C-contiguous copy
    height, width, channels = values.shape
    # Constants in pixel units, computed in float64: the 'raw' preset then is exactly identity.
    mean = (np.asarray(spec["mean"], dtype=np.float64) * 255.0).astype(np.float32)
    std = (np.asarray(spec["std"], dtype=np.float64) * 255.0).astype(np.float32)
    # Normalise (H, W*C) rows: with C as the innermost axis numpy runs ~6x slower.
    rows = values.reshape(height, width * channels)
    rows -= np.tile(mean, width)
    rows /= np.tile(std, width)
    if spec["layout"] == "nchw":
        return np.ascontiguousarray(values.transpose(2, 0, 1))
    return values


def upright_size(path):
    """(width, height) of an image file as decoding shows it (EXIF rotations by 90° swap the
    sides), read from its header: the frame that boxes on the original image refer to."""
    with Image.open(path) as img:
        width, height = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_tensor(path, spec):
    """Image file -> model input tensor (no batch axis)."""
    return to_tensor(resize_image(decode_image(path, spec), spec), spec)


def array_to_tensor(sample, spec, source_layout):
    """One sample of a user's array file -> model input tensor (no batch axis).

    uint8 samples are pixels and get the full preprocessing. Float samples are taken as already
    preprocessed: only their layout is changed, and their size must already be the model's.
    """
    sample = np.asarray(sample)
    if sample.ndim == 2:
        sample = sample[:, :, None]
    elif source_layout == "nchw":
        sample = sample.transpose(1, 2, 0)
    if sample.dtype == np.uint8:
        pixels = sample[:, :, 0] if sample.shape[2] == 1 else sample
        img = to_channels(Image.fromarray(np.ascontiguousarray(pixels)), spec["channels"])
        return to_tensor(resize_image(img, spec), spec)
    height, width, channels = sample.shape
    if (height, width) != tuple(spec["input_size"]) or channels != spec["channels"]:
        raise ValueError(
            f"float array samples are used as already preprocessed, but they are "
            f"{height}x{width}x{channels} and the model input is "
            f"{spec['input_size'][0]}x{spec['input_size'][1]}x{spec['channels']}; "
            f"give uint8 pixels to have them resized, or set --input-size/--channels to match"
        )
    if spec["layout"] == "nchw":
        sample = sample.transpose(2, 0, 1)
    return np.ascontiguousarray(sample, dtype=np.float32)
