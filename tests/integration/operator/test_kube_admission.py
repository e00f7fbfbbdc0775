"""Admission in the kubernetes runtime, against the real kube-apiserver, Kafka and PostgreSQL: which
to_deploy messages become VideoScenarios, and how many runner Pods may exist at once.

As in test_kube_operator.py, the operator runs as its ServiceAccount and the tests play the kubelet.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from kubernetes import client
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import consume, wait_until
from tests.integration.operator.operator_test_support import produce, start
from tests.kube_cluster import Cluster
from vap_common.contracts import DeployCommand
from vap_common.schema import Worker
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, dlq_name, topic_name


def worker(sessions: sessionmaker[Session], scenario_uuid: uuid.UUID) -> Worker | None:
    with sessions() as session:
        return session.scalars(select(Worker).where(Worker.scenario_uuid == scenario_uuid)).one_or_none()


def ready_condition(body: dict[str, Any] | None) -> dict[str, Any]:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def deploy(scenario_uuid: uuid.UUID, camera_url: str = "rtsp://cam.example/stream") -> DeployCommand:
    return DeployCommand(
        scenario_uuid=scenario_uuid, worker_id=f"w-{scenario_uuid}", action="deploy", camera_url=camera_url
    )


def test_a_deploy_for_an_unknown_scenario_is_dead_lettered_and_a_stale_one_is_dropped(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
) -> None:
    operator = start_operator()
    cluster = Cluster(kube, kube_namespace)
    unknown, failed, stopping, real = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # Rows the orchestrator could have left: a scenario failed for good, one whose shutdown came first.
    with sessions.begin() as session:
        for scenario, status, desired in (
            (failed, "failed", "active"),
            (stopping, "in_shutdown_processing", "inactive"),
        ):
            session.add(
                Worker(
                    worker_id=f"w-{scenario}",
                    scenario_uuid=scenario,
                    camera_url="rtsp://cam.example/stream",
                    status=status,
                    desired_state=desired,
                )
            )

    produce(
        kafka_settings,
        Topic.TO_DEPLOY,
        [deploy(unknown, "rtsp://admin:pw@attacker.example/x"), deploy(failed), deploy(stopping)],
    )
    dead = consume(kafka_settings, dlq_name(topic_name(Topic.TO_DEPLOY, kafka_settings.topic_prefix)), expected=1)
    assert [message.key() for message in dead] == [str(unknown).encode()]
    headers = {key: value.decode() for key, value in dead[0].headers() or []}
    assert headers["dlq.original.topic"] == topic_name(Topic.TO_DEPLOY, kafka_settings.topic_prefix)
    assert "unknown scenario" in headers["dlq.error"] and str(unknown) in headers["dlq.error"]
    wait_until(lambda: operator.log().count('"verdict": "stale"') == 2, what="both stale deploys dropped")

    # The consumer went on: a registered scenario still gets its object and Pod.
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(real)])
    cluster.wait_pod(real)
    assert [body["metadata"]["name"] for body in cluster.all_vs()] == [f"vs-{real}"]
    assert [pod["metadata"]["name"] for pod in cluster.pods()] == [f"vs-{real}-runner"]
    assert not [
        s for s in cluster.core.list_namespaced_secret(kube_namespace).items if s.metadata.name.startswith("vs-")
    ]
    assert worker(sessions, unknown) is None
    assert operator.alive()


def test_past_capacity_a_scenario_waits_with_its_reason_and_starts_when_a_slot_frees(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
) -> None:
    operator = start_operator(VAP_KUBERNETES__CAPACITY="2")  # waiting scenarios re-check every 5 * 0.5 s
    cluster = Cluster(kube, kube_namespace)
    scenarios = [uuid.uuid4() for _ in range(3)]
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(scenario) for scenario in scenarios])

    def the_waiting_one() -> uuid.UUID | None:
        waiting = [s for s in scenarios if ready_condition(cluster.vs(s)).get("reason") == "WaitingForCapacity"]
        return waiting[0] if len(waiting) == 1 and len(cluster.pods()) == 2 else None

    waiting = wait_until(the_waiting_one, what="two Pods and one scenario waiting for capacity")
    body = cluster.vs(waiting)
    assert body is not None and body["status"]["phase"] == "in_startup_processing"
    assert ready_condition(body)["message"] == "waiting for capacity: 2 of 2 runner Pods"
    wait_until(
        lambda: (worker(sessions, waiting) or Worker()).wait_reason == "waiting for capacity: 2 of 2 runner Pods",
        what="workers.wait_reason",
    )
    assert "WaitingForCapacity" in wait_until(
        lambda: cluster.event_reasons(waiting), what="the WaitingForCapacity event"
    )
    # It keeps checking (kopf retries the handler) and keeps waiting while both slots are taken.
    wait_until(
        lambda: operator.log().count("waiting for capacity: 2 of 2") >= 3, timeout_seconds=20, what="three checks"
    )
    assert cluster.pod(waiting) is None and len(cluster.pods()) == 2
    assert cluster.event_reasons(waiting).count("WaitingForCapacity") == 1

    # One runner finishes its file: its Pod stays for its logs but holds no slot any more.
    finished = next(s for s in scenarios if s != waiting)
    cluster.set_pod(finished, "Succeeded", exit_code=0)
    cluster.wait_phase(finished, "inactive")
    cluster.wait_pod(waiting, timeout_seconds=20)
    wait_until(
        lambda: ready_condition(cluster.vs(waiting)).get("reason") in ("PodCreated", "PodPending"),
        what="the wait to end in the status",
    )
    row = worker(sessions, waiting)
    assert row is not None and row.wait_reason is None and row.status == "in_startup_processing"
    assert all((worker(sessions, s) or Worker()).wait_reason is None for s in scenarios)
    live = [pod for pod in cluster.pods() if (pod.get("status") or {}).get("phase") != "Succeeded"]
    assert len(live) == 2 and len(cluster.pods()) == 3


def test_the_oldest_waiting_scenario_gets_the_next_free_slot(
    start_operator: Any, kafka_settings: KafkaSettings, kube: client.ApiClient, kube_namespace: str
) -> None:
    start_operator(VAP_KUBERNETES__CAPACITY="1")
    cluster = Cluster(kube, kube_namespace)
    first, older, younger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def waits(scenario: uuid.UUID) -> bool:
        return ready_condition(cluster.vs(scenario)).get("reason") == "WaitingForCapacity"

    produce(kafka_settings, Topic.INIT_SCENARIO, [start(first)])
    cluster.wait_pod(first)
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(older)])
    wait_until(lambda: waits(older), what="the older scenario waiting")
    time.sleep(1.1)  # creationTimestamp has whole seconds: the younger one must be created in a later one
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(younger)])
    wait_until(lambda: waits(younger), what="the younger scenario waiting")

    cluster.set_pod(first, "Succeeded", exit_code=0)
    cluster.wait_pod(older, timeout_seconds=20)
    assert cluster.pod(younger) is None and waits(younger)
