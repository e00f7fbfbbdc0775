"""The runner checks the camera address policy itself, just before it connects (a real runner process,
real Kafka): an HTTP camera redirecting to an address the policy refuses fails the scenario with
CameraAddressRefused, never connecting there; a redirect the policy admits is followed."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tests.helpers import UntouchedPort
from tests.integration.runner.runner_test_support import RunnerProcess
from vap_common.contracts import FrameResult, StatusEvent
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.runner_contract import RunnerExit

Start = Callable[..., RunnerProcess]
Readers = tuple[Callable[..., list[FrameResult]], Callable[..., list[StatusEvent]]]
# The camera server's own address only: 127.0.0.2 is loopback the policy refuses.
ONLY_THE_CAMERA = "127.0.0.1/32"


def test_an_http_camera_redirecting_to_loopback_fails_refused_and_is_never_followed(
    http_camera: str, start_runner: Start, results_and_statuses: Readers
) -> None:
    _, statuses = results_and_statuses
    target = UntouchedPort("127.0.0.2")
    try:
        scenario = uuid.uuid4()
        runner = start_runner(
            f"{http_camera}/redirect?http://127.0.0.2:{target.port}/car-detection.mp4",
            scenario_uuid=scenario,
            camera_policy__allow=ONLY_THE_CAMERA,
        )
        assert runner.wait(timeout_seconds=30) == RunnerExit.FAILED, runner.messages()

        events = statuses(until=lambda got: len(got) >= 1)
        assert [(event.scenario_uuid, event.status, event.reason) for event in events] == [
            (scenario, ScenarioStatus.FAILED, FailureReason.CAMERA_ADDRESS_REFUSED)
        ]
        message = events[0].message or ""
        assert "host 127.0.0.2 is a loopback address" in message and "after 1 redirect" in message, message
        assert target.connections() == 0
        assert "source lost; reconnecting" not in runner.messages(), "a refusal is not retried"
    finally:
        target.close()


def test_an_http_camera_redirect_the_policy_admits_is_followed(
    http_camera: str, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario = uuid.uuid4()
    runner = start_runner(
        f"{http_camera}/redirect?/car-detection.mp4",
        scenario_uuid=scenario,
        camera_policy__allow=ONLY_THE_CAMERA,
        target_fps=1.25,
    )
    assert runner.wait(timeout_seconds=60) == RunnerExit.DONE, runner.messages()
    assert [result.frame_number for result in results(until=lambda got: len(got) >= 38)] == list(range(0, 377, 10))
    assert [event.status for event in statuses(until=lambda got: len(got) >= 2)] == [
        ScenarioStatus.ACTIVE,
        ScenarioStatus.INACTIVE,
    ]
