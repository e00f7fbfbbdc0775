from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from vap_common.contracts import Detection, FrameResult, InvalidMessage, ScenarioCommand, StatusEvent, decode, encode
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
    [b"not json", b"{}", b'{"scenario_uuid": "x", "status": "active"}', b'{"scenario_uuid": "00000000-0000-0000-0000-000000000001", "status": "dancing"}', None],
)
def test_decode_rejects_bad_values_with_invalid_message(raw: bytes | None) -> None:
    with pytest.raises(InvalidMessage):
        decode(StatusEvent, raw)


def test_unknown_fields_are_rejected() -> None:
    raw = json.dumps({"scenario_uuid": str(uuid.uuid4()), "command": "start", "camera_url": "rtsp://h/s", "extra": 1}).encode()
    with pytest.raises(InvalidMessage):
        decode(ScenarioCommand, raw)


def test_status_event_carries_reason_code() -> None:
    event = StatusEvent(scenario_uuid=uuid.uuid4(), status=ScenarioStatus.FAILED, reason=FailureReason.SOURCE_UNREACHABLE, message="no route")
    assert json.loads(encode(event))["reason"] == "SourceUnreachable"
