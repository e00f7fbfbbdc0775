"""The publisher when Kafka cannot take results: DownstreamBlocked, never a silent loss."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from vap_common.contracts import FrameResult, encode
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_runner.publisher import DownstreamBlocked, Publisher


def test_results_kafka_never_acknowledges_raise_downstream_blocked() -> None:
    publisher = Publisher(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),  # nobody listens
        scenario_uuid=uuid.uuid4(),
        blocked_timeout_seconds=0.5,
        linger_ms=5,
        on_wait=lambda: None,
    )
    result = encode(FrameResult(scenario_uuid=uuid.uuid4(), run_id="r1", frame_number=0, detections=[], timestamp=datetime.now(UTC)))
    publisher.publish_result(result)  # queued: Kafka's answer comes later
    deadline = time.monotonic() + 10
    with pytest.raises(DownstreamBlocked, match="did not acknowledge"):
        while time.monotonic() < deadline:
            publisher.poll()
            time.sleep(0.05)
    with pytest.raises(DownstreamBlocked):
        publisher.publish_result(result)
    assert not publisher.publish_status(ScenarioStatus.FAILED, reason=FailureReason.DOWNSTREAM_BLOCKED, message="x", timeout_seconds=1)
