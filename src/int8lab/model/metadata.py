"""TFLite Metadata inside the model: what MediaPipe Tasks, the LiteRT support library and Android
Studio read, so the model runs as it comes out (labels, normalisation, colour space).

Written by tflite-support's maintained metadata writer (the flatbuffer is never hand-made). It is
imported from ``tensorflow_lite_support.metadata``, not ``tflite_support``, whose Task API needs a
protobuf older than TensorFlow's; make installs it with ``--no-deps`` (see README). Without it,
models are written without metadata and a warning says why. Metadata never changes inference:
every embedding is checked (same tensors, same outputs) before the model is written.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from int8lab import __version__
from int8lab.errors import Int8labError
from int8lab.model.mediapipe_detector import LAYOUT_BOXES


PACKED_DATE = (2000, 1, 1, 0, 0, 0)  # the packed files' zip date: same inputs, same bytes


class MetadataError(Int8labError):
    """The metadata could not be written, or would have changed the model."""


def writer_missing() -> str | None:
    """Why metadata cannot be written here, or None when it can."""
    try:
        from tensorflow_lite_support.metadata.python.metadata_writers import metadata_writer  # noqa: F401
    except ImportError as exc:
        return (f"no TFLite metadata written: tflite-support's metadata writer is not importable ({exc}); "
                f"make installs it (pip install --no-deps tflite-support==0.4.4; it needs libusb-1.0)")
    return None


def with_metadata(content: bytes, sidecar: dict, name: str) -> bytes:
    """``content`` with metadata from the sidecar: input normalisation and colour space from the
    preprocessing spec; for a classifier, its labels as the output's associated label file."""
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as metadata_fb
    from tensorflow_lite_support.metadata.python.metadata_writers import metadata_info, metadata_writer, writer_utils

    from tensorflow.lite.tools import flatbuffer_utils

    spec = sidecar["preprocessing"]
    task = (sidecar.get("task") or {}).get("name", "classify")
    labels = sidecar.get("labels") or []
    # Re-serialised by TensorFlow's own flatbuffer tools first: the writer's older populator
    # mislinks the buffers of ai-edge-quantizer's output as it comes (the check below caught it).
    buffer = flatbuffer_utils.convert_object_to_bytearray(flatbuffer_utils.read_model_from_bytearray(bytearray(content)))
    input_type = writer_utils.get_input_tensor_types(buffer)[0]
    output_types = writer_utils.get_output_tensor_types(buffer)
    color = {1: metadata_fb.ColorSpaceType.GRAYSCALE}.get(spec["channels"], metadata_fb.ColorSpaceType.RGB
                                                          if spec["color"] == "rgb" else metadata_fb.ColorSpaceType.UNKNOWN)
    image = metadata_info.InputImageTensorMd(
        name="image", description=_input_description(spec),
        norm_mean=[255.0 * m for m in spec["mean"]], norm_std=[255.0 * s for s in spec["std"]],
        color_space_type=color, tensor_type=input_type)
    general = metadata_info.GeneralMd(
        name=name, version=__version__, author="int8lab",
        description=f"{sidecar.get('mode', '')} model written by int8lab {__version__} ({task}); preprocessing: "
                    f"{spec['resize']} to {spec['input_size'][0]}x{spec['input_size'][1]}, preset {spec['preset']}")
    with tempfile.TemporaryDirectory() as tmp:
        if task == "detect" and (sidecar["task"].get("layout") or {}).get("boxes") == LAYOUT_BOXES:
            writer = _mediapipe_detector_writer(buffer, general, image, labels, Path(tmp), sidecar["task"]["layout"])
        elif task == "classify" and len(output_types) == 1 and labels:
            labels_file = Path(tmp) / "labels.txt"
            labels_file.write_text("".join(f"{label}\n" for label in labels))
            output = metadata_info.ClassificationTensorMd(
                name="scores", description=f"Scores of the {len(labels)} classes.",
                label_files=[metadata_info.LabelFileMd(str(labels_file))], tensor_type=output_types[0])
            writer = metadata_writer.MetadataWriter.create_from_metadata_info(
                buffer, general_md=general, input_md=[image], output_md=[output], associated_files=[str(labels_file)])
        else:
            outputs = [metadata_info.TensorMd(name=f"output_{k}", description=_output_description(task, sidecar))
                       for k in range(len(output_types))]
            writer = metadata_writer.MetadataWriter.create_from_metadata_info(
                buffer, general_md=general, input_md=[image], output_md=outputs)
        written = _dated(bytes(writer.populate()))
    check_same_inference(content, written)
    return written


def _mediapipe_detector_writer(buffer: bytearray, general, image, labels: list[str], tmp: Path, layout: dict):
    """Metadata MediaPipe's ObjectDetector reads for a model without NMS: a ``location`` tensor
    of y, x, h, w boxes (BoundingBoxProperties, ratios), a ``score`` tensor whose axis labels are
    the class names, and DETECTOR_METADATA (int8lab.model.mediapipe_detector) as custom metadata."""
    import flatbuffers
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as metadata_fb
    from tensorflow_lite_support.metadata.python import metadata as populator
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow_lite_support.metadata.python.metadata_writers import metadata_info, metadata_writer, writer_utils

    from int8lab.model.mediapipe_detector import LOCATION, SCORE, detector_metadata

    labels_file = tmp / "labels.txt"
    labels_file.write_text("".join(f"{label}\n" for label in labels))
    location = metadata_info.TensorMd(name=LOCATION, description="Box centre y, x, height, width as fractions of "
                                                                "the input (MediaPipe's YXHW).").create_metadata()
    box = metadata_fb.BoundingBoxPropertiesT()
    box.index, box.type, box.coordinateType = [1, 0, 3, 2], metadata_fb.BoundingBoxType.BOUNDARIES, \
        metadata_fb.CoordinateType.RATIO
    location.content = metadata_fb.ContentT()
    location.content.contentPropertiesType = metadata_fb.ContentProperties.BoundingBoxProperties
    location.content.contentProperties = box
    score = metadata_info.ClassificationTensorMd(
        name=SCORE, description=f"Scores of the {len(labels)} classes for each box (sigmoid applied).",
        label_files=[metadata_info.LabelFileMd(str(labels_file))],
        tensor_type=writer_utils.get_output_tensor_types(buffer)[1]).create_metadata()
    graph = schema.Model.GetRootAsModel(buffer, 0).Subgraphs(0)
    rows = int(graph.Tensors(graph.Outputs(1)).ShapeAsNumpy()[1])
    custom = metadata_fb.CustomMetadataT()
    custom.name = "DETECTOR_METADATA"
    custom.data = list(detector_metadata(rows, layout["num_classes"]))
    subgraph = metadata_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [image.create_metadata()], [location, score]
    subgraph.customMetadata = [custom]
    model = general.create_metadata()
    model.subgraphMetadata = [subgraph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), populator.MetadataPopulator.METADATA_FILE_IDENTIFIER)
    return metadata_writer.MetadataWriter(buffer, builder.Output(), [str(labels_file)])


def _dated(content: bytes) -> bytes:
    """The packed files (a zip appended to the flatbuffer) again, dated PACKED_DATE instead of
    the time of writing, so that the same model is the same file."""
    with zipfile.ZipFile(io.BytesIO(content)) as packed:
        infos = packed.infolist()
        if not infos:
            return content
        files = [(info.filename, packed.read(info)) for info in infos]
        start = min(info.header_offset for info in infos)  # absolute: where the flatbuffer ends
    buffer = io.BytesIO(content[:start])
    buffer.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buffer, "a") as packed:
        for name, data in files:
            packed.writestr(zipfile.ZipInfo(name, date_time=PACKED_DATE), data)
    return buffer.getvalue()


def _input_description(spec: dict) -> str:
    layout = "NCHW" if spec["layout"] == "nchw" else "NHWC"
    return (f"{spec['color'].upper() if spec['channels'] == 3 else 'grayscale'} image, {layout}, "
            f"(pixel - mean) / std per channel")


def _output_description(task: str, sidecar: dict) -> str:
    if task == "detect":
        layout = (sidecar.get("task") or {}).get("layout") or {}
        return (f"Raw YOLO-style predictions (boxes in {layout.get('boxes', 'pixels')} units, then class "
                f"scores); decode and run NMS (int8lab snippet writes both)")
    return "Model output."


def check_same_inference(before: bytes, after: bytes) -> None:
    """The same input and output tensors (names, types, shapes, quantization), and bit-identical
    outputs on the same inputs: metadata is only a description."""
    from int8lab.model.tflite_info import inspect_tflite
    from int8lab.runtime import LiteRTModel

    a, b = inspect_tflite(before), inspect_tflite(after)
    if (a.inputs, a.outputs, a.op_histogram) != (b.inputs, b.outputs, b.op_histogram):
        raise MetadataError("writing the metadata changed the model's tensors or ops")
    first, second = LiteRTModel(before), LiteRTModel(after)
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, first.input_shape).astype(np.float32)
    if not np.array_equal(first.predict(batch), second.predict(batch)):
        raise MetadataError("writing the metadata changed the model's outputs")


def read_metadata(content: bytes) -> dict | None:
    """The metadata a runtime would read (as JSON) and the files packed with it (labels), or
    None when the model has none."""
    if b"TFLITE_METADATA" not in content:
        return None
    try:
        from tensorflow_lite_support.metadata.python import metadata
    except ImportError as exc:
        return {"present": True, "readable": False, "why": str(exc)}
    import json

    displayer = metadata.MetadataDisplayer.with_model_buffer(bytearray(content))
    files = {}
    for name in displayer.get_packed_associated_file_list():
        text = displayer.get_associated_file_buffer(name).decode(errors="replace")
        files[name] = [line for line in text.splitlines() if line.strip()]
    return {"present": True, "readable": True, "metadata": json.loads(displayer.get_metadata_json()),
            "associated_files": files}
