"""Builds a tiny YOLO-style ONNX model by writing its protobuf by hand (no onnx package, no download).

The model reads a (1, 3, 32, 32) image and has 4 candidate boxes, one per 16x16 quadrant. Each box is
fixed (centred on its quadrant, 12x12 input pixels). The score of class 0 ("bright") is the quadrant's
mean brightness, computed by a Conv; class 1 ("fixed") has constant scores: 0.9 for the top-left
quadrant, 0.1 elsewhere. Output layouts: yolov8 (1, 4 + 2, 4) or yolov5 (1, 4, 5 + 2) with objectness 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INPUT_SIZE = 32
QUADRANT = 16
BOX_SIZE = 12
FIXED_SCORES = (0.9, 0.1, 0.1, 0.1)  # class 1, quadrants in row-major order

# ONNX enum values and field numbers (onnx.proto).
_FLOAT, _INT64 = 1, 7
_ATTR_INTS = 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | str | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:
    data_type = _INT64 if array.dtype == np.int64 else _FLOAT
    raw = array.astype("<i8" if data_type == _INT64 else "<f4").tobytes()
    return b"".join(_field(1, dim) for dim in array.shape) + _field(2, data_type) + _field(8, name) + _field(9, raw)


def _value_info(name: str, shape: tuple[int, ...]) -> bytes:
    dims = b"".join(_field(1, _field(1, dim)) for dim in shape)
    tensor_type = _field(1, _FLOAT) + _field(2, dims)
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _ints_attribute(name: str, values: list[int]) -> bytes:
    return _field(1, name) + b"".join(_field(8, value) for value in values) + _field(20, _ATTR_INTS)


def _node(op_type: str, inputs: list[str], outputs: list[str], attributes: bytes = b"") -> bytes:
    body = b"".join(_field(1, name) for name in inputs) + b"".join(_field(2, name) for name in outputs)
    return body + _field(3, f"{op_type}_{outputs[0]}") + _field(4, op_type) + attributes


def build(path: Path, *, layout: str = "yolov8") -> Path:
    objectness = layout == "yolov5"
    channels = 4 + int(objectness) + 2
    bright = 4 + int(objectness)  # channel of class 0's score
    weights = np.zeros((channels, 3, QUADRANT, QUADRANT), np.float32)
    weights[bright] = 1.0 / (3 * QUADRANT * QUADRANT)  # mean over the quadrant = brightness in [0, 1]
    constants = np.zeros((1, channels, 2, 2), np.float32)
    for row in range(2):
        for col in range(2):
            constants[0, 0:4, row, col] = (
                QUADRANT * col + QUADRANT / 2,
                QUADRANT * row + QUADRANT / 2,
                BOX_SIZE,
                BOX_SIZE,
            )
            constants[0, channels - 1, row, col] = FIXED_SCORES[row * 2 + col]
    if objectness:
        constants[0, 4] = 1.0
    candidates = 4
    nodes = [
        _node(
            "Conv",
            ["images", "weights"],
            ["brightness"],
            _field(5, _ints_attribute("kernel_shape", [QUADRANT, QUADRANT]))
            + _field(5, _ints_attribute("strides", [QUADRANT, QUADRANT])),
        ),
        _node("Add", ["brightness", "constants"], ["grid"]),
        _node("Reshape", ["grid", "shape"], ["rows" if objectness else "output0"]),
    ]
    output_shape: tuple[int, ...] = (1, channels, candidates)
    if objectness:
        nodes.append(_node("Transpose", ["rows"], ["output0"], _field(5, _ints_attribute("perm", [0, 2, 1]))))
        output_shape = (1, candidates, channels)
    initializers = [
        _tensor("weights", weights),
        _tensor("constants", constants),
        _tensor("shape", np.array([1, channels, candidates], np.int64)),
    ]
    graph = (
        b"".join(_field(1, node) for node in nodes)
        + _field(2, "tiny_yolo")
        + b"".join(_field(5, tensor) for tensor in initializers)
        + _field(11, _value_info("images", (1, 3, INPUT_SIZE, INPUT_SIZE)))
        + _field(12, _value_info("output0", output_shape))
    )
    model = _field(1, 8) + _field(2, "vap-tests") + _field(7, graph) + _field(8, _field(1, "") + _field(2, 13))
    path.write_bytes(model)
    return path
