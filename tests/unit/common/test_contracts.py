from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from vap_common.contracts import (
    MAX_CLASS_NAME_LENGTH,
    Detection,
    DetectionRecord,
    EventType,
    FrameResult,
    FrameResultRecord,
    InvalidMessage,
    ObjectEvent,
    ScenarioCommand,
    StatusEvent,
    decode,
    encode,
)
from vap_common.lifecycle import FailureReason, ScenarioStatus


def test_frame_result_wire_format_uses_class_key() -> None:
    result = FrameResult(
        scenario_uuid=uuid.UUID(int=1),
        run_id="run-a",
        frame_number=3,
        detections=[Detection.model_validate({"class": "person", "confidence": 0.9, "bbox": [1, 2, 3, 4]})],
        timestamp=datetime(2026, 11, 25, tzinfo=UTC),
    )
    wire = json.loads(encode(result))
    assert wire["detections"] == [{"class": "person", "confidence": 0.9, "bbox": [1.0, 2.0, 3.0, 4.0]}]
    assert wire["timestamp"] == "2026-11-25T00:00:00Z"
    assert decode(FrameResult, encode(result)) == result


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"{}",
        b'{"scenario_uuid": "x", "status": "active"}',
        b'{"scenario_uuid": "00000000-0000-0000-0000-000000000001", "status": "dancing"}',
        None,
    ],
)
def test_decode_rejects_bad_values_with_invalid_message(raw: bytes | None) -> None:
    with pytest.raises(InvalidMessage):
        decode(StatusEvent, raw)


def test_unknown_fields_are_rejected() -> None:
    raw = json.dumps(
        {"scenario_uuid": str(uuid.uuid4()), "command": "start", "camera_url": "rtsp://h/s", "extra": 1}
    ).encode()
    with pytest.raises(InvalidMessage):
        decode(ScenarioCommand, raw)


def test_status_event_carries_reason_code() -> None:
    event = StatusEvent(
        scenario_uuid=uuid.uuid4(),
        status=ScenarioStatus.FAILED,
        reason=FailureReason.SOURCE_UNREACHABLE,
        message="no route",
    )
    assert json.loads(encode(event))["reason"] == "SourceUnreachable"


GOOD_RESULT = {
    "scenario_uuid": "00000000-0000-0000-0000-000000000001",
    "run_id": "run-a",
    "frame_number": 3,
    "detections": [{"class": "person", "confidence": 0.9, "bbox": [1, 2, 3, 4]}],
    "timestamp": "2026-11-25T00:00:00Z",
}


def _with(path: tuple[object, ...], value: object) -> bytes:
    """GOOD_RESULT with the field at ``path`` set to ``value`` (a value of ``...`` removes it)."""
    result = json.loads(json.dumps(GOOD_RESULT))
    *parents, last = path
    target = result
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return json.dumps(result).encode()


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(GOOD_RESULT).encode(),
        _with(("detections",), []),
        _with(("scenario_uuid",), "x"),
        _with(("run_id",), ""),
        _with(("run_id",), "r" * 65),
        _with(("frame_number",), -1),
        _with(("frame_number",), ...),
        _with(("timestamp",), "yesterday"),
        _with(("extra",), 1),
        _with(("detections", 0, "confidence"), 1.5),
        _with(("detections", 0, "bbox"), [1, 2, 3]),
        _with(("detections", 0, "class"), ...),
        _with(("detections", 0, "class_name"), "car"),
        _with(("detections", 0, "colour"), "red"),
        # What msgspec's strict fast path does not take is decided by the model:
        _with(("timestamp",), 1764028800),  # lax: a Unix time
        _with(("frame_number",), "3"),  # lax: a numeric string
        _with(("timestamp",), "2026-11-25T00:00:00"),  # no offset
        _with(("detections", 0, "class"), "a\u0000b"),  # NUL: PostgreSQL cannot store it
        _with(("run_id",), "\u0000"),
        _with(("detections", 0, "class"), "\\u0000 is text, not NUL"),
        _with(("frame_number",), 2**63),
        _with(("detections", 0, "bbox"), [1, 2, 3, 1e308]),
        _with(("detections", 0, "confidence"), True),
        json.dumps(GOOD_RESULT).replace("[1, 2, 3, 4]", "[1, 2, 3, NaN]").encode(),
        json.dumps(GOOD_RESULT).replace("[1, 2, 3, 4]", "[1, 2, 3, 1e400]").encode(),
        json.dumps(GOOD_RESULT).replace('"person"', '"\\ud800"').encode(),
        _with(("detections",), [GOOD_RESULT["detections"][0]] * 1001),  # type: ignore[index]
    ],
)
def test_frame_result_record_accepts_and_rejects_what_the_model_does(raw: bytes) -> None:
    """The inbox validates results as FrameResultRecord: it must agree with FrameResult on every value."""

    def outcome(contract: object) -> object:
        try:
            return decode(contract, raw)  # type: ignore[call-overload]
        except InvalidMessage:
            return "rejected"

    model, record = outcome(FrameResult), outcome(FrameResultRecord)
    if model == "rejected":
        assert record == "rejected"
    else:
        assert isinstance(model, FrameResult) and isinstance(record, FrameResultRecord)
        assert json.loads(msgspec.json.encode(record)) == json.loads(encode(model))


def test_frame_result_record_has_the_model_fields() -> None:
    assert set(FrameResultRecord.__struct_fields__) == set(FrameResult.model_fields)
    assert set(DetectionRecord.__struct_encode_fields__) == {
        field.alias or name for name, field in Detection.model_fields.items()
    }


# --- ObjectEvent ----------------------------------------------------------------------------------------

_EVENT_BASE = {
    "scenario_uuid": str(uuid.UUID(int=7)),
    "run_id": "run-a",
    "sequence": 4,
    "track_id": 12,
    "class": "person",
    "frame_number": 90,
    "captured_at": "2026-12-03T10:00:00Z",
}
_ZONE = {"zone": "dock"}
_LINE = {"line": "gate", "direction": "left_to_right"}
_DWELL = {"dwell_seconds": 2.5}


@pytest.mark.parametrize(
    ("event_type", "extra"),
    [
        (EventType.OBJECT_APPEARED, {}),
        (EventType.OBJECT_LOST, {}),
        (EventType.OBJECT_ENTERED, _ZONE),
        (EventType.OBJECT_LEFT, {**_ZONE, **_DWELL}),
        (EventType.LINE_CROSSED, _LINE),
    ],
)
def test_object_event_of_each_type_round_trips(event_type: EventType, extra: dict[str, Any]) -> None:
    raw = json.dumps({**_EVENT_BASE, "type": event_type.value, **extra}).encode()
    event = decode(ObjectEvent, raw)
    assert event.type is event_type and decode(ObjectEvent, encode(event)) == event
    assert json.loads(encode(event))["class"] == "person"
    assert event.event_id == f"{uuid.UUID(int=7)}:run-a:4"


@pytest.mark.parametrize(
    ("event_type", "extra", "complaint"),
    [
        (EventType.OBJECT_ENTERED, {}, "zone is required"),
        (EventType.OBJECT_LEFT, _ZONE, "dwell_seconds is required"),
        (EventType.OBJECT_ENTERED, {**_ZONE, **_DWELL}, "dwell_seconds is not allowed"),
        (EventType.OBJECT_APPEARED, _ZONE, "zone is not allowed"),
        (EventType.LINE_CROSSED, {"line": "gate"}, "direction is required"),
        (EventType.LINE_CROSSED, {"direction": "left_to_right"}, "line is required"),
        (EventType.OBJECT_LOST, _LINE, "line is not allowed"),
        (EventType.OBJECT_LEFT, {**_ZONE, **_DWELL, **_LINE}, "line is not allowed"),
    ],
)
def test_object_event_fields_must_match_its_type(event_type: EventType, extra: dict[str, Any], complaint: str) -> None:
    raw = json.dumps({**_EVENT_BASE, "type": event_type.value, **extra}).encode()
    with pytest.raises(InvalidMessage, match=complaint):
        decode(ObjectEvent, raw)


@pytest.mark.parametrize(
    "change",
    [
        {"sequence": -1},
        {"track_id": -1},
        {"run_id": ""},
        {"run_id": "r" * 65},
        {"class": "x" * (MAX_CLASS_NAME_LENGTH + 1)},
        {"class": "ca\u0000r"},
        {"captured_at": "2026-12-03T10:00:00"},  # naive: no time zone
        {"type": "object_teleported"},
        {"zone": "", "type": "object_entered"},
        {"zone": "z" * 65, "type": "object_entered"},
        {"type": "object_left", "zone": "dock", "dwell_seconds": -1.0},
        {"type": "line_crossed", "line": "gate", "direction": "north"},
    ],
)
def test_object_event_rejects_values_out_of_bounds(change: dict[str, Any]) -> None:
    raw = json.dumps({**_EVENT_BASE, "type": "object_appeared", **change}).encode()
    with pytest.raises(InvalidMessage):
        decode(ObjectEvent, raw)


def test_object_event_rejects_a_non_finite_dwell() -> None:
    raw = json.dumps({**_EVENT_BASE, "type": "object_left", "zone": "dock", "dwell_seconds": float("nan")}).encode()
    with pytest.raises(InvalidMessage):
        decode(ObjectEvent, raw)
