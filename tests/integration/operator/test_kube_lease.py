"""The kubernetes runtime's lease on its runners (workers.heartbeat_at), and a PostgreSQL outage, against
the real servers. The outage is a proxy in front of the shared PostgreSQL that the test cuts: the
server itself stays up for everyone else.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import wait_until
from tests.integration.operator.operator_test_support import produce, start
from tests.kube_cluster import Cluster
from tests.tcp_proxy import TcpProxy
from vap_common.schema import Worker
from vap_common.settings import DatabaseSettings, KafkaSettings
from vap_common.topics import Topic


def heartbeat(sessions: sessionmaker[Session], scenario_uuid: uuid.UUID) -> datetime | None:
    with sessions() as session:
        return session.scalars(select(Worker.heartbeat_at).where(Worker.scenario_uuid == scenario_uuid)).one_or_none()


def renewed_after(
    sessions: sessionmaker[Session], scenario_uuid: uuid.UUID, moment: datetime | None
) -> datetime | None:
    current = heartbeat(sessions, scenario_uuid)
    return current if current is not None and (moment is None or current > moment) else None


@pytest.fixture
def db_proxy(db_settings: DatabaseSettings) -> Iterator[TcpProxy]:
    url = make_url(db_settings.url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy


def test_the_lease_of_a_ready_runner_pod_is_renewed_every_period(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
) -> None:
    start_operator(VAP_HEARTBEAT_SECONDS="0.5")
    cluster = Cluster(kube, kube_namespace)
    ready, starting = uuid.uuid4(), uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(ready), start(starting)])
    cluster.wait_pod(ready)
    cluster.wait_pod(starting)
    cluster.set_pod(starting, "Running", ready=False)
    cluster.set_pod(ready, "Running", ready=True)

    first = wait_until(lambda: renewed_after(sessions, ready, None), what="the first lease")
    second = wait_until(lambda: renewed_after(sessions, ready, first), timeout_seconds=5, what="a renewal")
    assert (second - first).total_seconds() < 3
    assert heartbeat(sessions, starting) is None  # not ready: nothing vouches for it yet

    # Once the runner is no longer ready, its lease stops moving (after a renewal already under way).
    cluster.set_pod(ready, "Running", ready=False)
    time.sleep(1.0)
    settled = heartbeat(sessions, ready)
    time.sleep(2.0)  # four periods: no renewal may happen in them
    assert settled is not None and heartbeat(sessions, ready) == settled


def test_a_database_outage_pauses_the_operator_which_then_carries_on(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
    db_settings: DatabaseSettings,
    db_proxy: TcpProxy,
) -> None:
    proxied = make_url(db_settings.url).set(port=db_proxy.port).render_as_string(hide_password=False)
    operator = start_operator(VAP_HEARTBEAT_SECONDS="0.5", VAP_DATABASE__URL=proxied)
    cluster = Cluster(kube, kube_namespace)
    running, finishing, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(running), start(finishing)])
    for scenario in (running, finishing):
        cluster.wait_pod(scenario)
        cluster.set_pod(scenario, "Running", ready=True)
        cluster.wait_phase(scenario, "active")
    before = wait_until(lambda: renewed_after(sessions, running, None), what="the first lease")

    db_proxy.cut()
    wait_until(lambda: "periodic task failed" in operator.log(), what="a failed renewal")
    stalled = heartbeat(sessions, running)
    # Meanwhile a runner ends (reconcile cannot record it) and a new scenario arrives (the orchestrator
    # cannot store it): both are retried, nothing gives up.
    cluster.set_pod(finishing, "Succeeded", exit_code=0)
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(later)])
    wait_until(
        lambda: "Handler 'reconcile/status.runner' failed with an exception" in operator.log(), what="reconcile failing"
    )
    wait_until(lambda: operator.log().count("periodic task failed") >= 6, what="renewals failing for a while")
    assert operator.alive() and heartbeat(sessions, running) == stalled and cluster.vs(later) is None
    assert cluster.phase(finishing) == "active"  # its status waits for the row: both are written, or neither

    db_proxy.restore()
    wait_until(
        lambda: renewed_after(sessions, running, stalled or before),
        timeout_seconds=20,
        what="renewals after the outage",
    )
    cluster.wait_phase(finishing, "inactive")
    with sessions() as session:
        assert session.scalars(select(Worker.status).where(Worker.scenario_uuid == finishing)).one() == "inactive"
    cluster.wait_pod(later, timeout_seconds=60)
    assert operator.alive()
