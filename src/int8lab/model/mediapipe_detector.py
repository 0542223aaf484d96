"""A YOLO detector in the form MediaPipe's ObjectDetector runs without in-model NMS: two float
outputs, ``location`` [1, N, 4] (box centre y, x, height, width as fractions of the input) and
``score`` [1, N, classes], read with the ``DETECTOR_METADATA`` of int8lab.model.metadata.

The quantized model is left as it was validated; a few float ops are appended after its one
output (transpose to rows, slice boxes and scores, a 4 x 4 matrix that reorders x, y, w, h to
y, x, h, w and divides by the input size, v5's objectness product), so int8lab validates and
predicts with the same file MediaPipe runs. Each anchor of the metadata is (0, 0) with size 1 and
every scale 1: MediaPipe's box decoding (centre / scale * anchor size + anchor centre) is then the
identity, and its score threshold and non-maximum suppression do the rest.
"""

from __future__ import annotations

import numpy as np

from int8lab.errors import UsageError

LOCATION, SCORE = "location", "score"  # the output names MediaPipe's detection graph looks for
LAYOUT_BOXES = "normalized-yxhw"  # int8lab.tasks.detect.DetectionLayout.boxes of the written model


def check_layout(layout: dict) -> None:
    """Refuse heads MediaPipe's two-output form cannot express."""
    if layout.get("end_to_end"):
        raise UsageError("--target mediapipe takes detectors with per-class scores for every anchor; an end-to-end "
                         "head ([1, K, 6] rows with a class index) has none: use --target cpu and the snippet")


def with_mediapipe_outputs(content: bytes, layout: dict) -> tuple[bytes, dict]:
    """The model with ``location`` and ``score`` outputs in place of its YOLO output, and the
    layout that reads them (int8lab's runtime joins [1, N, k] outputs along the last axis)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    check_layout(layout)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))  # buffers past the flatbuffer read in
    graph = model.subgraphs[0]
    if len(graph.outputs) != 1:
        raise UsageError(f"--target mediapipe expects the detector's one YOLO output, found {len(graph.outputs)}")
    output = graph.tensors[graph.outputs[0]]
    if output.type != schema.TensorType.FLOAT32:
        raise UsageError("--target mediapipe needs the detector's output in float (mode int8-float-io)")
    shape = [int(d) for d in output.shape]
    rows = shape[1] if layout["channel_axis"] == 2 else shape[2]
    classes = layout["num_classes"]
    builder = _GraphBuilder(model, schema)
    joined = graph.outputs[0]
    if layout["channel_axis"] == 1:  # [1, 4 + classes, N] -> [1, N, 4 + classes]
        joined = builder.op("TRANSPOSE", [joined, builder.constant(np.array([0, 2, 1], np.int32))],
                            [1, rows, shape[1]], "int8lab_rows", schema.TransposeOptionsT())
    xywh = builder.slice(joined, [0, 0, 0], [1, rows, 4], "int8lab_boxes")
    first_class = 5 if layout["objectness"] else 4
    scores = builder.slice(joined, [0, 0, first_class], [1, rows, classes],
                           SCORE if not layout["objectness"] else "int8lab_class_scores")
    if layout["objectness"]:
        objectness = builder.slice(joined, [0, 0, 4], [1, rows, 1], "int8lab_objectness")
        scores = builder.op("MUL", [scores, objectness], [1, rows, classes], SCORE, schema.MulOptionsT())
    height, width = layout["input_size"]
    scale = (1.0, 1.0, 1.0, 1.0) if layout["boxes"] == "normalized" else (1 / width, 1 / height, 1 / width, 1 / height)
    reorder = np.zeros((4, 4), np.float32)  # FULLY_CONNECTED weights [out, in]: out = (y, x, h, w)
    for out, source in enumerate((1, 0, 3, 2)):
        reorder[out, source] = scale[source]
    options = schema.FullyConnectedOptionsT()
    options.keepNumDims = True
    location = builder.op("FULLY_CONNECTED", [xywh, builder.constant(reorder), -1], [1, rows, 4], LOCATION, options)
    graph.outputs = [location, scores]
    for signature in model.signatureDefs or []:
        signature.outputs = [builder.tensor_map(LOCATION, location), builder.tensor_map(SCORE, scores)]
    written = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return written, {**layout, "channel_axis": 2, "objectness": False, "boxes": LAYOUT_BOXES, "nms": "mediapipe"}


def detector_metadata(num_boxes: int, num_classes: int) -> bytes:
    """The ``DETECTOR_METADATA`` flatbuffer (MediaPipe's own schema, from the mediapipe package):
    one identity anchor per box, scales 1, no exponential, scores already sigmoid."""
    try:
        from mediapipe.tasks.metadata import object_detector_metadata_schema_py_generated as detector_fb
    except ImportError as exc:
        raise UsageError(f"--target mediapipe for a detector writes MediaPipe's DETECTOR_METADATA, which needs "
                         f"the mediapipe package (the mediapipe extra; make installs it): {exc}") from None
    import flatbuffers

    anchors = detector_fb.FixedAnchorsSchemaT()
    anchors.anchors = []
    for _ in range(num_boxes):
        anchor = detector_fb.FixedAnchorT()
        anchor.xCenter, anchor.yCenter, anchor.width, anchor.height = 0.0, 0.0, 1.0, 1.0
        anchors.anchors.append(anchor)
    ssd = detector_fb.SsdAnchorsOptionsT()
    ssd.fixedAnchorsSchema = anchors
    decoding = detector_fb.TensorsDecodingOptionsT()
    decoding.numClasses, decoding.numBoxes, decoding.numCoords = num_classes, num_boxes, 4
    decoding.keypointCoordOffset, decoding.numKeypoints, decoding.numValuesPerKeypoint = 0, 0, 2
    decoding.xScale = decoding.yScale = decoding.wScale = decoding.hScale = 1.0
    decoding.applyExponentialOnBoxSize, decoding.sigmoidScore = False, False
    options = detector_fb.ObjectDetectorOptionsT()
    options.ssdAnchorsOptions, options.tensorsDecodingOptions = ssd, decoding
    builder = flatbuffers.Builder(0)
    builder.Finish(options.Pack(builder), b"V001")
    return bytes(builder.Output())


class _GraphBuilder:
    """Appends float tensors, constants and builtin ops to subgraph 0 of a flatbuffer ModelT."""

    def __init__(self, model, schema):
        self.model, self.schema, self.graph = model, schema, model.subgraphs[0]

    def tensor(self, shape, name: str, dtype: int | None = None, buffer: int = 0) -> int:
        tensor = self.schema.TensorT()
        tensor.shape = np.array(shape, np.int32)
        tensor.type = self.schema.TensorType.FLOAT32 if dtype is None else dtype
        tensor.name, tensor.buffer = name.encode(), buffer
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def constant(self, values: np.ndarray) -> int:
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        dtype = self.schema.TensorType.INT32 if values.dtype == np.int32 else self.schema.TensorType.FLOAT32
        return self.tensor(values.shape, f"int8lab_constant_{len(self.model.buffers)}", dtype, len(self.model.buffers) - 1)

    def slice(self, source: int, begin, size, name: str) -> int:
        return self.op("SLICE", [source, self.constant(np.array(begin, np.int32)), self.constant(np.array(size, np.int32))],
                       size, name, self.schema.SliceOptionsT())

    def op(self, kind: str, inputs: list[int], shape, name: str, options=None) -> int:
        code = getattr(self.schema.BuiltinOperator, kind)
        codes = self.model.operatorCodes
        index = next((k for k, c in enumerate(codes) if max(c.builtinCode, c.deprecatedBuiltinCode) == code), None)
        if index is None:
            entry = self.schema.OperatorCodeT()
            entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), 1
            codes.append(entry)
            index = len(codes) - 1
        output = self.tensor(shape, name)
        operator = self.schema.OperatorT()
        operator.opcodeIndex, operator.inputs, operator.outputs = index, list(inputs), [output]
        if options is not None:
            operator.builtinOptionsType = getattr(self.schema.BuiltinOptions, type(options).__name__[:-1])
            operator.builtinOptions = options
        self.graph.operators.append(operator)
        return output

    def tensor_map(self, name: str, index: int):
        entry = self.schema.TensorMapT()
        entry.name, entry.tensorIndex = name, index
        return entry
