from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from vap_common.contracts import (
    Detection,
    DetectionRecord,
    FrameResult,
    FrameResultRecord,
    InvalidMessage,
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
