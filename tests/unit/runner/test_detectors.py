"""Each detector plug-in on real frames from media/, plus the registry that validates them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MEDIA
from tests.unit.runner.tiny_onnx import build as build_tiny_onnx
from vap_common import detector_config
from vap_common.contracts import Detection
from vap_common.detector_config import InvalidDetectorConfig
from vap_runner.detectors import Detector, build_detector, detectors, validate_config

PERSON_VIDEO = str(MEDIA / "one-by-one-person-detection.mp4")
Frames = Callable[[str, set[int]], dict[int, np.ndarray]]


def make(name: str, **settings: object) -> Detector:
    return build_detector(validate_config(name, settings))


def assert_inside(detections: list[Detection], frame: np.ndarray) -> None:
    height, width = frame.shape[:2]
    for found in detections:
        x1, y1, x2, y2 = found.bbox
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, found


def overlaps_x(found: Detection, left: float, right: float) -> bool:
    return found.bbox[0] < right and found.bbox[2] > left


# --- registry -------------------------------------------------------------------------------------


def test_registry_discovers_every_plugin_module_and_implements_exactly_the_shared_configs() -> None:
    assert set(detectors()) == {"mock", "hog_person", "haar_face", "motion", "onnx"}
    assert sorted(detectors()) == detector_config.names()  # the API's names are the runner's


@pytest.mark.parametrize(
    ("name", "settings", "problem"),
    [
        ("yolo9000", {}, "unknown detector 'yolo9000'"),
        ("mock", {"max_detections": -1}, "max_detections"),
        ("mock", {"colour": "red"}, "colour"),
        ("mock", {"type": "motion"}, "say type 'motion'"),
        ("onnx", {}, "model_path"),
        (
            "onnx",
            {"model_path": "/nonexistent/model.onnx"},
            "model_path: /nonexistent/model.onnx is not a file on this runner",
        ),
        ("haar_face", {"cascade": "../../etc/passwd"}, "cascade"),
    ],
)
def test_invalid_detector_settings_are_refused_with_the_field_named(
    name: str, settings: dict[str, object], problem: str
) -> None:
    with pytest.raises(InvalidDetectorConfig, match=problem):
        validate_config(name, settings)


# --- mock -----------------------------------------------------------------------------------------


def test_mock_is_a_pure_function_of_frame_content(media_frames: Frames) -> None:
    frames = media_frames(PERSON_VIDEO, {0, 100, 400})
    first, second = make("mock"), make("mock")
    outputs = {number: first.detect(frame) for number, frame in frames.items()}
    assert outputs == {number: second.detect(frame.copy()) for number, frame in frames.items()}
    assert outputs == {number: first.detect(frame) for number, frame in frames.items()}  # no state between calls
    assert len({tuple(found) for found in map(tuple, outputs.values())}) > 1, "different frames should differ"
    for number, found in outputs.items():
        assert_inside(found, frames[number])
        assert all(item.class_name in {"person", "car"} and 0.5 <= item.confidence <= 1 for item in found)


def test_mock_uses_the_wire_format_of_the_original_spec(media_frames: Frames) -> None:
    frame = media_frames(PERSON_VIDEO, {0})[0]
    found = make("mock", max_detections=5, classes=["person"]).detect(frame)
    assert found, "this frame's digest gives at least one detection"
    wire = found[0].model_dump(by_alias=True, mode="json")
    assert set(wire) == {"class", "confidence", "bbox"} and wire["class"] == "person" and len(wire["bbox"]) == 4


# --- hog_person -----------------------------------------------------------------------------------


def test_hog_finds_the_person_at_the_table(media_frames: Frames) -> None:
    # Frames 350 and 400: one person stands at the table, between x = 350 and 570 of 768.
    frames = media_frames(PERSON_VIDEO, {350, 400})
    hog = make("hog_person")
    for number, frame in frames.items():
        found = hog.detect(frame)
        assert_inside(found, frame)
        people = [item for item in found if item.class_name == "person" and overlaps_x(item, 350, 570)]
        assert people, f"no person found in frame {number}: {found}"
        assert max(item.confidence for item in people) > 0.7


def test_hog_finds_nobody_in_an_empty_room(media_frames: Frames) -> None:
    assert make("hog_person").detect(media_frames(PERSON_VIDEO, {0})[0]) == []


def test_hog_boxes_stay_in_original_pixels_when_downscaled(media_frames: Frames) -> None:
    frame = media_frames(PERSON_VIDEO, {350})[350]
    found = make("hog_person", process_width_px=640).detect(frame)
    assert any(overlaps_x(item, 350, 570) and item.bbox[3] - item.bbox[1] > 150 for item in found), found


# --- haar_face ------------------------------------------------------------------------------------


def test_haar_face_runs_on_real_frames_and_returns_faces_in_frame(media_frames: Frames) -> None:
    # The sample videos show people from behind; this checks the plumbing (cascade loading, boxes in
    # original pixels, confidences), not face recall.
    frames = media_frames(PERSON_VIDEO, {30, 350, 400})
    for cascade in ("frontalface_default", "profileface"):
        haar = make("haar_face", cascade=cascade, process_width_px=384)
        for frame in frames.values():
            found = haar.detect(frame)
            assert_inside(found, frame)
            assert all(item.class_name == "face" and 0.5 <= item.confidence < 1 for item in found)


def test_haar_face_finds_nothing_on_a_blank_wall() -> None:
    assert make("haar_face").detect(np.full((432, 768, 3), 200, np.uint8)) == []


# --- motion ---------------------------------------------------------------------------------------


def test_motion_boxes_the_person_walking_in(media_frames: Frames) -> None:
    # Frames 0-56: the empty room; 60-72: the first person walks in from the bottom left to the table.
    numbers = set(range(0, 73, 4))
    frames = media_frames(PERSON_VIDEO, numbers)
    motion = make("motion", warmup_frames=3)
    results = {number: motion.detect(frames[number]) for number in sorted(numbers)}
    assert results[0] == [], "warm-up frames report nothing"
    assert all(not results[number] for number in range(12, 57, 4)), "a still room is not motion"
    for number in range(60, 73, 4):
        found = results[number]
        assert found and all(item.class_name == "motion" for item in found), (
            f"frame {number}: the walking person is motion"
        )
        assert_inside(found, frames[number])
    # The person walks right, towards the table: the box follows.
    assert results[72][0].bbox[0] > results[60][0].bbox[0] + 100


def test_motion_ignores_a_frozen_picture(media_frames: Frames) -> None:
    frame = media_frames(PERSON_VIDEO, {400})[400]
    motion = make("motion", warmup_frames=2)
    assert [motion.detect(frame) for _ in range(6)] == [[]] * 6


# --- onnx -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
def test_onnx_parses_yolo_output_into_original_pixels(tmp_path: Path, layout: str) -> None:
    model = build_tiny_onnx(tmp_path / "tiny.onnx", layout=layout)
    onnx = make(
        "onnx",
        model_path=str(model),
        input_width_px=32,
        input_height_px=32,
        output_layout=layout,
        class_names=["bright", "fixed"],
    )
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[32:, 32:] = 255  # only the bottom-right quadrant is bright
    found = sorted(onnx.detect(frame), key=lambda item: item.class_name)
    # The model's input is the frame at half size: its 12 px boxes are 24 px here, centred on quadrants.
    assert [item.model_dump(by_alias=True) for item in found] == [
        {"class": "bright", "confidence": 1.0, "bbox": (36.0, 36.0, 60.0, 60.0)},
        {"class": "fixed", "confidence": 0.9, "bbox": (4.0, 4.0, 28.0, 28.0)},
    ]


def test_onnx_letterboxes_a_real_frame(tmp_path: Path, media_frames: Frames) -> None:
    frame = media_frames(PERSON_VIDEO, {0})[0]
    onnx = make(
        "onnx",
        model_path=str(build_tiny_onnx(tmp_path / "tiny.onnx")),
        input_width_px=32,
        input_height_px=32,
        confidence_threshold=0.5,
    )
    found = onnx.detect(frame)
    assert_inside(found, frame)
    # 768x432 -> 32x18 centred with 7 grey rows above: the fixed top-left box maps back to x 48..336.
    fixed = [item for item in found if item.class_name == "class_1"]
    assert len(fixed) == 1 and fixed[0].bbox[0] == pytest.approx(48.0) and fixed[0].bbox[2] == pytest.approx(336.0)
