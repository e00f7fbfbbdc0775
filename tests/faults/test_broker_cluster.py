"""One of three Kafka brokers killed under load (replication 3, min.insync.replicas 2, producers
acks=all) and left down: nothing is lost, nothing is stored or served twice, and delivery pauses only
for the leader election of the partitions the dead broker led.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.e2e_support import CAR_URL
from tests.faults.conftest import PlatformFactory, Report
from tests.faults.harness import FaultEnd, db_now, run_case
from tests.faults.servers import KafkaCluster
from vap_common.topics import Topic, topic_name

SLOW = {"delay_ms": 400}


@pytest.mark.kafka_cluster
def test_one_of_three_brokers_killed_under_load_loses_nothing(make_platform: PlatformFactory, report: Report) -> None:
    platform = make_platform()
    cluster = platform.broker
    assert isinstance(cluster, KafkaCluster)

    def fault(_scenarios: list[uuid.UUID]) -> FaultEnd:
        victim = cluster.leader_of_most(topic_name(Topic.RESULTS, platform.kafka.topic_prefix))
        killed = time.monotonic()
        victim.kill()
        during = platform.api.init(CAR_URL, name="registered with one broker down")
        return FaultEnd(
            f"broker {victim.node_id} of 3 (leader of most results partitions) "
            f"killed (-9) {time.monotonic() - killed:.1f}s ago and left down",
            db_now(platform.engine),
            registered_during=(during,),
            recovery_from="first result stored after the kill",
        )

    figures = run_case(platform, report, "one-of-three-brokers-killed", fault, camera_url=CAR_URL, settings=SLOW)
    assert sum(figures.exits.values()) == 0, f"a service had to be restarted: {figures.exits}"
