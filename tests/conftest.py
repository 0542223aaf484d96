"""Shared fixtures: the shipped real photos and Fashion-MNIST example, and odd files made from them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "assets" / "photos"
FASHION = ROOT / "examples" / "fashion" / "data"
EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="session")
def photo_paths() -> list[Path]:
    return sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".png"))


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    return FASHION


@pytest.fixture
def photo() -> Image.Image:
    """A real RGB photograph (493x356 JPEG)."""
    with Image.open(PHOTOS / "butterfly.jpg") as img:
        return img.convert("RGB")


@pytest.fixture
def classification_tree(tmp_path) -> Path:
    """DIR/{val,test}/<class>/ with real photos: 3 classes in val, 2 in test."""
    photos = sorted(PHOTOS.glob("*.jpg"))
    for split, classes in (("val", ("cat_b", "cat_a", "cat_c")), ("test", ("cat_a", "cat_b"))):
        for k, name in enumerate(classes):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for j in range(2):
                shutil.copy(photos[(k + j) % len(photos)], folder / f"{j}_{photos[k].name}")
    return tmp_path


def save_odd_files(folder: Path, photo: Image.Image) -> dict[str, Path]:
    """Every odd-but-valid kind of file a user's folder may hold, made from a real photo."""
    folder.mkdir(parents=True, exist_ok=True)
    small = photo.resize((160, 120))
    files = {}

    def save(name, img, **kw):
        files[name] = folder / name
        img.save(files[name], **kw)

    save("cmyk.jpg", small.convert("CMYK"))
    save("gray.png", small.convert("L"))
    save("rgba.png", small.convert("RGBA"))
    save("la.png", small.convert("LA"))
    save("palette.png", small.convert("P", palette=Image.Palette.ADAPTIVE))
    sixteen = (np.asarray(small.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    save("sixteen_bit.png", Image.fromarray(sixteen))
    frames = [small, small.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    files["animated.gif"] = folder / "animated.gif"
    frames[0].save(files["animated.gif"], save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored sideways: display rotated 90 degrees clockwise
    save("rotated.jpg", small, exif=exif.tobytes(), quality=95)
    for ext in ("bmp", "tif", "tiff", "webp", "jpeg"):
        save(f"plain.{ext}", small)
    save("UPPER.JPG", small)
    files["mpo.mpo"] = folder / "mpo.mpo"
    small.save(files["mpo.mpo"], format="MPO", save_all=True, append_images=[small])
    return files


def save_broken_files(folder: Path, photo: Image.Image) -> dict[str, Path]:
    """Files with image names that cannot be decoded."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "_whole.jpg"
    photo.save(good, quality=90)
    data = good.read_bytes()
    good.unlink()
    files = {"truncated.jpg": data[: len(data) // 3], "empty.png": b"",
             "not_an_image.jpg": b"this is a text file with an image name\n"}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {name: folder / name for name in files}


FASHION_MODEL = ROOT / "examples" / "fashion" / "model.keras"


@pytest.fixture(scope="session")
def fashion_model() -> Path:
    """The shipped example: a compact CNN trained on Fashion-MNIST, 28x28x1 in [0, 1]."""
    return FASHION_MODEL


@pytest.fixture(scope="session")
def fashion_opts():
    """Calibration options that fit the example model (the rest is read from the model)."""
    from int8lab.config import DataOptions

    return DataOptions(preset="unit", quiet=True, compare_plans="off")


@pytest.fixture(scope="session")
def fashion_int8(tmp_path_factory, fashion_model, fashion_dir, fashion_opts):
    """The example model converted once to full int8 (a ConvertResult)."""
    from int8lab.pipeline import convert_job

    out = tmp_path_factory.mktemp("int8") / "model_int8.tflite"
    return convert_job(fashion_model, fashion_dir, out, fashion_opts, "int8")


@pytest.fixture(scope="session")
def fashion_fp32_tflite(tmp_path_factory, fashion_model, fashion_opts) -> Path:
    """The example model as a float .tflite (the input of the ai-edge-quantizer path)."""
    from int8lab.pipeline import convert_job

    out = tmp_path_factory.mktemp("fp32") / "model_fp32.tflite"
    return convert_job(fashion_model, None, out, fashion_opts, "none").path


def tiny_keras_model(extra_layer=None, input_shape=(16, 16, 3)):
    """A small untrained conv net; ``extra_layer`` goes right after the input."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input(input_shape)
    x = extra_layer(inputs) if extra_layer is not None else inputs
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))


TORCH_MODEL = ROOT / "examples" / "fashion" / "model_torch.pth"
TORCH_ARCH = f"{ROOT / 'examples' / 'fashion' / 'fashion_torch.py'}:build_model"


@pytest.fixture(scope="session")
def torch_options():
    """How to load the shipped PyTorch example (a state dict): its factory and input size."""
    from int8lab.model.source import ModelOptions

    return ModelOptions(arch=TORCH_ARCH, input_size=(28, 28))


@pytest.fixture(scope="session")
def torch_module(torch_options):
    """The PyTorch example as an nn.Module, for exporting it in other formats."""
    from int8lab.model.torch_source import TorchSource

    return TorchSource(TORCH_MODEL, torch_options).module


@pytest.fixture(scope="session")
def torch_pt2(tmp_path_factory, torch_module) -> Path:
    import torch

    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    torch.export.save(torch.export.export(torch_module, (torch.zeros(1, 1, 28, 28),)), path)
    return path


@pytest.fixture(scope="session")
def torch_onnx(tmp_path_factory, torch_options) -> Path:
    """The PyTorch example exported to ONNX by int8lab's own --onnx path."""
    from int8lab.model.torch_source import TorchSource

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return TorchSource(TORCH_MODEL, torch_options).export_onnx(path)


def int8lab(*args, check=True, cwd=None) -> subprocess.CompletedProcess:
    """The `int8lab` command as a user runs it: a real subprocess, real files, real exit codes."""
    result = subprocess.run([sys.executable, "-m", "int8lab", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


MOBILENET = ROOT / "examples" / "fashion" / "mobilenetv3.keras"


@pytest.fixture(scope="session")
def mobilenet_model() -> Path:
    """The model that quantizes badly: MobileNetV3-Small (hard-swish), 48x48x3 in [-1, 1]."""
    return MOBILENET


def mediapipe_finds(model: Path, images: list[Path], tmp: Path, min_iou: float = 0.8) -> tuple[int, int]:
    """(found, of): how many of `int8lab predict`'s detections MediaPipe's own ObjectDetector finds
    in ``model`` (same label name, IoU >= ``min_iou``), both given each image at the model's input
    size (MediaPipe's resize differs from Pillow's) and MediaPipe normalising it from the metadata."""
    import mediapipe as mp
    from mediapipe.tasks import python as tasks
    from mediapipe.tasks.python import vision

    from int8lab import imageops
    from int8lab.tasks.boxes import box_iou

    spec = json.loads(Path(f"{model}.json").read_text())["preprocessing"]
    sized = []
    for k, image in enumerate(images):
        sized.append(tmp / f"{k}.png")
        imageops.resize_image(imageops.decode_image(image, spec), spec).convert("RGB").save(sized[-1])
    ours = json.loads(int8lab("predict", model, *sized, "-o", tmp, "--json").stdout)
    options = vision.ObjectDetectorOptions(base_options=tasks.BaseOptions(model_asset_path=str(model)),
                                           score_threshold=0.25)
    found = total = 0
    with vision.ObjectDetector.create_from_options(options) as detector:
        for path, expected in zip(sized, ours):
            pixels = np.ascontiguousarray(np.asarray(Image.open(path)))
            result = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
            boxes = np.array([[d.bounding_box.origin_x, d.bounding_box.origin_y,
                               d.bounding_box.origin_x + d.bounding_box.width,
                               d.bounding_box.origin_y + d.bounding_box.height] for d in result.detections]).reshape(-1, 4)
            names = np.array([d.categories[0].category_name for d in result.detections])
            for detection in expected["detections"]:
                same = names == detection["label"]
                total += 1
                found += bool(same.any()) and box_iou(np.array([detection["box"]]), boxes[same]).max() >= min_iou
    return found, total


@pytest.fixture(scope="session")
def convnext_attention_onnx(tmp_path_factory, torch_module) -> Path:
    """The shipped Fashion-MNIST CNN with a ConvNeXt block (depthwise 7x7, LayerNorm, GELU MLP,
    layer scale) and a ViT-style attention block (LayerNorm, qkv, softmax) on its 7x7 features,
    as timm and torchvision models have them; layer scale 0.1 leaves its predictions mostly its own."""
    import torch
    from torch import nn

    class ConvNeXtBlock(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
            self.gamma = nn.Parameter(torch.full((dim,), 0.1))

        def forward(self, x):
            y = self.fc2(nn.functional.gelu(self.fc1(self.norm(self.dw(x).permute(0, 2, 3, 1))))) * self.gamma
            return x + y.permute(0, 3, 1, 2)

    class Attention(nn.Module):
        def __init__(self, dim, heads=4):
            super().__init__()
            self.heads, self.norm = heads, nn.LayerNorm(dim, eps=1e-6)
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.gamma = nn.Parameter(torch.full((dim,), 0.1))

        def forward(self, t):
            b, n, c = t.shape
            q, k, v = self.qkv(self.norm(t)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            attention = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1)
            return t + self.proj((attention @ v).transpose(1, 2).reshape(b, n, c)) * self.gamma

    class Hybrid(nn.Module):
        def __init__(self, cnn):
            super().__init__()
            torch.manual_seed(0)
            self.cnn, self.block, self.attention = cnn, ConvNeXtBlock(64), Attention(64)

        def forward(self, x):
            tokens = self.attention(self.block(self.cnn.features(x)).flatten(2).transpose(1, 2))
            return torch.softmax(self.cnn.classifier(tokens.mean(1)), dim=1)

    path = tmp_path_factory.mktemp("hybrid") / "hybrid.onnx"
    torch.onnx.export(Hybrid(torch_module.eval()).eval(), (torch.zeros(1, 1, 28, 28),), str(path), input_names=["x"],
                      output_names=["y"], opset_version=17, dynamo=False)
    return path


def check_html_report(path: Path, tmp: Path) -> list:
    """What a person opening report.html gets: every image embedded and decodable, nothing fetched,
    and, where Debian's chromium is installed, a page headless Chromium renders (a screenshot with
    more than one colour). Returns the decoded images."""
    import base64
    import io
    import re
    import shutil

    page = path.read_text()
    assert "http://" not in page and "https://" not in page and path.stat().st_size < 3_000_000
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/") for s in sources)
    images = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in sources]
    for image in images:
        image.load()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        shot = tmp / "report.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600",
                        f"--screenshot={shot}", path.resolve().as_uri()], capture_output=True, timeout=120, check=True)
        with Image.open(shot) as rendered:
            assert len(rendered.convert("RGB").getcolors(1 << 24) or []) > 10
    return images
