"""Fixtures of the end-to-end tests: the whole platform as real processes on this test's PostgreSQL
schema and Kafka topic prefix (dev/platform_stack.py: API, outbox relay, inbox, operator), real
runner processes started by the operator, and a real RTSP camera.

Every process a test starts carries the test's topic prefix in its environment
(``VAP_KAFKA__TOPIC_PREFIX``, which the runtimes pass on to runners and their inference processes);
teardown stops the platform and fails the test if any such process is still alive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import pytest

from dev.platform_stack import PlatformStack, create_api_key
from tests.conftest import has_failed
from tests.e2e.e2e_support import CAR_FPS, CAR_FRAMES, CAR_VIDEO, Api, ResultsTopic, platform_settings
from tests.helpers import fail_if_processes_left
from vap_common.settings import DatabaseSettings, KafkaSettings


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """car-detection.mp4 as the tests assume it: 377 frames at 12.5 fps (the sampled frames follow from it)."""
    capture = cv2.VideoCapture(str(CAR_VIDEO))
    try:
        frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    assert (frames, fps) == (CAR_FRAMES, CAR_FPS), (
        f"{CAR_VIDEO}: {frames} frames at {fps} fps, the tests expect {CAR_FRAMES} at {CAR_FPS}"
    )
    return CAR_VIDEO


@pytest.fixture
def platform_env(db_settings: DatabaseSettings, kafka_settings: KafkaSettings) -> dict[str, str]:
    """The VAP_* settings every service of the test's platform shares."""
    return platform_settings(
        db_settings,
        kafka_settings,
        # A killed consumer's partitions move to its restarted successor after 6 s (the broker's minimum).
        VAP_INBOX__SESSION_TIMEOUT_SECONDS="6",
        VAP_CONSUMER_SESSION_TIMEOUT_SECONDS="6",
    )


PlatformFactory = Callable[..., PlatformStack]


@pytest.fixture
def make_platform(
    request: pytest.FixtureRequest, platform_env: dict[str, str], kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[PlatformFactory]:
    """``make_platform(**extra_env)``: start API, relay, inbox and operator; all stopped at teardown."""
    stacks: list[PlatformStack] = []

    def make(**extra_env: str) -> PlatformStack:
        stack = PlatformStack(log_dir=tmp_path / f"logs-{len(stacks)}", environment={**platform_env, **extra_env})
        stacks.append(stack)
        stack.start_all(ready_timeout_seconds=60)
        return stack

    yield make

    for stack in stacks:
        stack.stop_all(timeout_seconds=30)
    if has_failed(request):
        for stack in stacks:
            for log in sorted(stack.log_dir.glob("*.log")):
                print(f"----- {log} (tail) -----\n{log.read_text(errors='replace')[-8000:]}")
    fail_if_processes_left(kafka_settings.topic_prefix, after="the platform stopped")


@pytest.fixture
def platform(make_platform: PlatformFactory) -> PlatformStack:
    """The platform with the local runtime (runners are child processes of the operator)."""
    return make_platform()


@pytest.fixture
def api(platform: PlatformStack) -> Iterator[Api]:
    client = Api(
        platform.api_url,
        api_key=create_api_key(platform.environment, tenant="e2e"),
        check_alive=platform.check_alive,
    )
    yield client
    client.close()


@pytest.fixture
def results_topic(kafka_settings: KafkaSettings) -> Iterator[ResultsTopic]:
    topic = ResultsTopic(kafka_settings)
    yield topic
    topic.close()
