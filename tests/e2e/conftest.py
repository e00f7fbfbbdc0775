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
from e2e_support import CAR_FPS, CAR_FRAMES, CAR_VIDEO, TARGET_FPS, Api, ResultsTopic
from platform_stack import PlatformStack

from tests.conftest import has_failed
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
    assert (frames, fps) == (CAR_FRAMES, CAR_FPS), f"{CAR_VIDEO}: {frames} frames at {fps} fps, the tests expect {CAR_FRAMES} at {CAR_FPS}"
    return CAR_VIDEO


@pytest.fixture
def platform_env(db_settings: DatabaseSettings, kafka_settings: KafkaSettings) -> dict[str, str]:
    """The VAP_* settings every service of the test's platform shares."""
    prefix = kafka_settings.topic_prefix
    return {
        "VAP_ENVIRONMENT": "test",
        "VAP_LOG_LEVEL": "INFO",
        "VAP_DATABASE__URL": db_settings.url,
        "VAP_DATABASE__SCHEMA_NAME": db_settings.schema_name or "",
        "VAP_DATABASE__POOL_SIZE": "3",
        "VAP_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "VAP_KAFKA__TOPIC_PREFIX": prefix,
        # The API accepts file:// camera URLs (the runners read the sample videos of this machine).
        "VAP_ALLOW_FILE_URLS": "true",
        "VAP_ACCESS_LOG": "false",
        # Consumer groups of this test only (the inbox prefixes its group itself, the operator does not).
        "VAP_ORCHESTRATOR__CONSUMER_GROUP": f"{prefix}orchestrator",
        "VAP_LOCAL__CONSUMER_GROUP": f"{prefix}local",
        "VAP_KUBERNETES__CONSUMER_GROUP": f"{prefix}kubernetes",
        # A killed consumer's partitions move to its restarted successor after 6 s (the broker's minimum).
        "VAP_INBOX__SESSION_TIMEOUT_SECONDS": "6",
        "VAP_CONSUMER_SESSION_TIMEOUT_SECONDS": "6",
        # Cheap runners: analyse every 5th frame of the 12.5 fps sample file, one inference process.
        "VAP_RUNNER__TARGET_FPS": str(TARGET_FPS),
        "VAP_RUNNER__MAX_WORKERS": "1",
        "VAP_RUNNER__STOP_GRACE_SECONDS": "10",
        # A crashed runner is restarted after 0.5 s (doubling), not 2 s.
        "VAP_RESTART__BACKOFF_BASE_SECONDS": "0.5",
        "VAP_RESTART__BACKOFF_MAX_SECONDS": "2",
        "VAP_RELAY__POLL_INTERVAL_SECONDS": "0.5",
    }


PlatformFactory = Callable[..., PlatformStack]


@pytest.fixture
def make_platform(request: pytest.FixtureRequest, platform_env: dict[str, str], kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[PlatformFactory]:
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
    client = Api(platform.api_url, check_alive=platform.check_alive)
    yield client
    client.close()


@pytest.fixture
def results_topic(kafka_settings: KafkaSettings) -> Iterator[ResultsTopic]:
    topic = ResultsTopic(kafka_settings)
    yield topic
    topic.close()
