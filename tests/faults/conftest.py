"""Fixtures of the fault tests: a private Kafka broker and a private PostgreSQL cluster per test (real
servers on free loopback ports, state in the test's folders, always stopped at teardown), and the
platform under supervisord (./dev/services, dev/platform_stack.py SupervisedPlatform) on them.

The shared stack of ./dev/infra is never touched: a test kills, stops and freezes only its own
servers. The platform runs under supervisord because single-machine mode does (DESIGN.md,
"Self-healing"): a service that exits on purpose (a stalled consumer) or by a fault is restarted by
the supervisor, never by the test. Consumer timeouts are scaled down so that outages of seconds take
the paths of outages of minutes (session timeout 6 s, the broker's minimum; stall timeout 15 s).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dev.platform_stack import SupervisedPlatform, create_api_key
from tests.conftest import FIGURE, has_failed
from tests.e2e.e2e_support import CAR_VIDEO, Api, platform_settings
from tests.faults.harness import FaultPlatform, dump_logs
from tests.faults.servers import KafkaBroker, KafkaCluster, PostgresCluster
from tests.helpers import fail_if_processes_left
from vap_common.db import make_engine, migrate

SCHEMA = "faults"
# Seconds: the consumers' session timeout (the broker's minimum) and stall timeout, scaled down from
# 45 s / 10 s and 120 s so that a 30 s outage loses every assignment and a wedged consumer shows.
SESSION_TIMEOUT_SECONDS = 6
STALL_TIMEOUT_SECONDS = 15

Report = Callable[[str], None]


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """Print a figures line now, and again in the session's summary (tests/conftest.py)."""

    def emit(line: str) -> None:
        print(line)
        request.node.user_properties.append((FIGURE, line))

    return emit


@pytest.fixture(scope="session", autouse=True)
def sample_video() -> Path:
    assert CAR_VIDEO.exists(), f"{CAR_VIDEO} missing (media/ in the repository)"
    return CAR_VIDEO


@pytest.fixture
def topic_prefix() -> str:
    """A prefix of this test's own: it marks every process of the test (VAP_KAFKA__TOPIC_PREFIX=...)."""
    return f"f{uuid.uuid4().hex[:8]}."


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path, topic_prefix: str) -> Iterator[KafkaBroker | KafkaCluster]:
    """One private broker, or three (a KafkaCluster) for a test marked ``kafka_cluster``."""
    broker: KafkaBroker | KafkaCluster = (
        KafkaCluster(tmp_path / "kafka")
        if request.node.get_closest_marker("kafka_cluster")
        else KafkaBroker(tmp_path / "kafka")
    )
    try:
        broker.start()
        broker.wait_ready()
        broker.create_topics(topic_prefix)
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.create(tmp_path)
    try:
        cluster.init()
        engine = make_engine(cluster.settings(), pool_size=1)
        try:
            with engine.begin() as connection:
                connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        finally:
            engine.dispose()
        migrate(cluster.settings(SCHEMA))
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def fault_env(
    broker: KafkaBroker | KafkaCluster, postgres: PostgresCluster, topic_prefix: str, tmp_path: Path
) -> dict[str, str]:
    """The VAP_* settings every service shares (tests/e2e/conftest.py platform_env, on the private servers)."""
    return platform_settings(
        postgres.settings(SCHEMA),
        broker.settings(topic_prefix),
        # The runtime's exit-code files: this test's own (the default is shared by every runtime of a schema name).
        VAP_LOCAL__STATE_DIR=str(tmp_path / "runtime"),
        VAP_INBOX__SESSION_TIMEOUT_SECONDS=str(SESSION_TIMEOUT_SECONDS),
        VAP_CONSUMER_SESSION_TIMEOUT_SECONDS=str(SESSION_TIMEOUT_SECONDS),
        VAP_INBOX__STALL_TIMEOUT_SECONDS=str(STALL_TIMEOUT_SECONDS),
        VAP_CONSUMER_STALL_TIMEOUT_SECONDS=str(STALL_TIMEOUT_SECONDS),
    )


PlatformFactory = Callable[..., FaultPlatform]


@pytest.fixture
def make_platform(
    request: pytest.FixtureRequest,
    fault_env: dict[str, str],
    broker: KafkaBroker | KafkaCluster,
    postgres: PostgresCluster,
    topic_prefix: str,
    tmp_path: Path,
) -> Iterator[PlatformFactory]:
    """``make_platform(**extra_env)``: the four services under supervisord, ready; stopped at teardown
    (before the servers), and nothing of the test may outlive it."""
    started: list[FaultPlatform] = []

    def make(**extra_env: str) -> FaultPlatform:
        assert not started, "one platform per test"
        supervised = SupervisedPlatform(state_dir=tmp_path / "state", environment={**fault_env, **extra_env})
        engine = make_engine(postgres.settings(SCHEMA), pool_size=2)
        platform = FaultPlatform(
            supervised=supervised,
            api=Api(
                supervised.api_url,
                api_key=create_api_key(supervised.environment, tenant="faults"),
                check_alive=supervised.check_alive,
            ),
            engine=engine,
            kafka=broker.settings(topic_prefix),
            broker=broker,
            postgres=postgres,
        )
        started.append(platform)
        supervised.start_all()
        return platform

    yield make

    for platform in started:
        # A test that failed mid-fault: give the services their servers back so they stop cleanly.
        broker.restore()
        if not postgres.running():
            postgres.start()
        try:
            platform.supervised.stop_all()
        finally:
            platform.api.close()
            platform.engine.dispose()
            if has_failed(request):
                dump_logs(sorted(platform.supervised.log_dir.glob("*.log")))
                dump_logs([broker.log_file, postgres.log_file], chars=3000)
    fail_if_processes_left(topic_prefix, after="./dev/services down")
