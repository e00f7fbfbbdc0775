"""The kubernetes runtime against the real kube-apiserver, Kafka and PostgreSQL.

The operator runs as a subprocess authenticated as its ServiceAccount (operator/manifests RBAC), so
every test also proves the Role is enough. Nothing runs containers here: the tests play the kubelet
by patching the Pod status subresource.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import kubectl
from tests.helpers import CAMERA_KEYS, wait_until
from tests.integration.operator.operator_test_support import StatusLog, TopicReader, produce, shutdown, start
from tests.kube_cluster import Cluster
from vap_common.camera_secrets import CameraKeyring, generate_key
from vap_common.schema import Worker
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic
from vap_operator.kube.crd import GROUP, PLURAL, VERSION
from vap_operator.kube.manifests import LABEL_TENANT


def worker(sessions: sessionmaker[Session], scenario_uuid: uuid.UUID) -> Worker | None:
    with sessions() as session:
        return session.scalars(select(Worker).where(Worker.scenario_uuid == scenario_uuid)).one_or_none()


def conditions(body: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in body["status"]["conditions"]}


def host_port_of(pod: dict[str, Any] | None) -> int:
    """A runner Pod's HTTP port on the node's network: its container port `http`, which the runner is told too."""
    assert pod is not None and pod["spec"]["hostNetwork"] is True
    (container,) = pod["spec"]["containers"]
    (http,) = [port for port in container["ports"] if port["name"] == "http"]
    assert http["hostPort"] == http["containerPort"]  # the API server's default on the node's network
    assert {"name": "VAP_HTTP_PORT", "value": str(http["containerPort"])} in container["env"]
    return int(http["containerPort"])


def test_start_command_becomes_a_videoscenario_and_a_runner_pod_with_the_expected_spec(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    kube: client.ApiClient,
    kube_namespace: str,
    kubeconfig: str,
    sessions: sessionmaker[Session],
) -> None:
    start_operator(VAP_KUBERNETES__RUNNER_IMAGE="registry.example/vap-runner:test", VAP_RUNNER__MAX_WORKERS="2")
    cluster = Cluster(kube, kube_namespace)
    plain, secret, unreadable = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # As the API sends them: the password sealed, here with the operator's key and with one it lacks.
    secret_url = "rtsp://admin:hunter2@cam.example/live"
    sealed = CameraKeyring.parse([CAMERA_KEYS]).seal(secret_url)
    of_acme = start(secret, sealed).model_copy(update={"tenant": "acme"})
    foreign = start(unreadable, CameraKeyring.parse([generate_key("elsewhere")]).seal(secret_url))
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(plain), of_acme, foreign])

    pod = cluster.wait_pod(plain)
    body = cluster.wait_phase(plain, "in_startup_processing")
    assert body["spec"]["cameraURL"] == "rtsp://cam.example/stream" and body["spec"]["workerId"] == f"w-{plain}"
    assert pod["metadata"]["ownerReferences"][0] == {
        "apiVersion": "vap.dev/v1alpha1",
        "kind": "VideoScenario",
        "name": f"vs-{plain}",
        "uid": body["metadata"]["uid"],
        "controller": True,
    }
    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["image"] == "registry.example/vap-runner:test"
    assert spec["restartPolicy"] == "Never" and spec["securityContext"]["runAsNonRoot"] is True
    assert (
        container["securityContext"]["readOnlyRootFilesystem"] is True
        and container["securityContext"]["allowPrivilegeEscalation"] is False
    )
    assert (
        container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        and container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    )
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["VAP_SCENARIO_UUID"] == str(plain) and env["VAP_MAX_WORKERS"] == "2"
    assert env["VAP_CAMERA_URL"] == "rtsp://cam.example/stream"
    assert env["VAP_KAFKA__TOPIC_PREFIX"] == kafka_settings.topic_prefix
    # The runner checks the camera address again and refuses the servers the operator knows, the
    # Kubernetes API it talks to among them.
    api_server = urlsplit(kube.configuration.host)
    assert f"{api_server.hostname}:{api_server.port}" in (env["VAP_CAMERA_POLICY__PLATFORM"] or "").split(",")

    # A URL with credentials: Secret + secretKeyRef, never in the object, its Pod or its Events.
    secret_pod = cluster.wait_pod(secret)
    secret_vs = cluster.vs(secret)
    assert secret_vs is not None and "hunter2" not in json.dumps(secret_vs) and "hunter2" not in json.dumps(secret_pod)
    camera_env = [item for item in secret_pod["spec"]["containers"][0]["env"] if item["name"] == "VAP_CAMERA_URL"]
    assert camera_env[0]["valueFrom"]["secretKeyRef"] == {"name": f"vs-{secret}-camera", "key": "url"}
    stored_secret = cluster.core.read_namespaced_secret(f"vs-{secret}-camera", kube_namespace)
    assert stored_secret.metadata.owner_references[0].uid == secret_vs["metadata"]["uid"]
    # The operator opened the sealed password for the runner: only its Secret holds it in plain text.
    assert base64.b64decode(stored_secret.data["url"]).decode() == secret_url
    status_log.wait_for(unreadable, [("in_startup_processing", None), ("failed", "CredentialsUnreadable")])
    assert cluster.vs(unreadable) is None and cluster.pod(unreadable) is None
    # The scenario's tenant labels its objects (from the API's command, through the orchestrator).
    for labelled in (secret_vs["metadata"], secret_pod["metadata"]):
        assert labelled["labels"][LABEL_TENANT] == "acme"
    assert stored_secret.metadata.labels[LABEL_TENANT] == "acme"

    # kubectl shows the printer columns.
    table = kubectl(kubeconfig, "-n", kube_namespace, "get", "videoscenarios").stdout.splitlines()
    assert table[0].split() == ["NAME", "UUID", "TENANT", "PHASE", "POD", "RESTARTS", "AGE"]
    row = next(line.split() for line in table[1:] if line.startswith(f"vs-{plain}"))
    # The command came without a tenant, as one sent before tenants existed: the default tenant's.
    assert row[:6] == [f"vs-{plain}", str(plain), "default", "in_startup_processing", f"vs-{plain}-runner", "0"]

    # The orchestrator registered the worker and reported in_startup_processing.
    row_of = worker(sessions, plain)
    assert row_of is not None and (row_of.worker_id, row_of.status, row_of.desired_state, row_of.pod_name) == (
        f"w-{plain}",
        "in_startup_processing",
        "active",
        f"vs-{plain}-runner",
    )
    status = status_log
    status.wait_for(plain, [("in_startup_processing", None)])
    assert "PodCreated" in wait_until(lambda: cluster.event_reasons(plain), what="events")


def test_simulated_pod_phases_drive_the_videoscenario_status_and_scenario_status(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
) -> None:
    start_operator(VAP_KUBERNETES__RESYNC_SECONDS="1")
    cluster = Cluster(kube, kube_namespace)
    finishing, giving_up = uuid.uuid4(), uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(finishing), start(giving_up)])
    cluster.wait_pod(finishing)
    giving_up_pod = cluster.wait_pod(giving_up)

    # A lost Pod event (simulated: status.runner overwritten with a stale value) is put right by the resync timer.
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        f"vs-{finishing}",
        {"status": {"runner": {"uid": "stale", "phase": "Failed"}}},
    )
    wait_until(
        lambda: ((cluster.vs(finishing) or {}).get("status", {}).get("runner") or {}).get("phase") == "Pending",
        what="the resync",
    )

    cluster.set_pod(finishing, "Running", ready=False)
    cluster.wait_phase(finishing, "in_startup_processing")
    cluster.set_pod(finishing, "Running", ready=True)
    body = cluster.wait_phase(finishing, "active")
    assert conditions(body) == {"Ready": "True", "Failed": "False", "Stopped": "False"}
    assert body["status"]["startedAt"] and body["status"]["runner"]["ready"] is True
    assert all(c["observedGeneration"] == body["metadata"]["generation"] for c in body["status"]["conditions"])

    # End of the file: exit 0 -> inactive, published by the operator; never restarted.
    cluster.set_pod(finishing, "Succeeded", exit_code=0)
    body = cluster.wait_phase(finishing, "inactive")
    assert conditions(body)["Stopped"] == "True" and body["status"]["stoppedAt"]

    # Exit 3: the runner gave up and reported `failed` itself -> failed, no restart, nothing published.
    cluster.set_pod(giving_up, "Failed", exit_code=3, message="SourceUnreachable: 5 connection attempts failed")
    body = cluster.wait_phase(giving_up, "failed")
    assert body["status"]["lastError"]["reason"] == "SourceUnreachable" and body["status"]["restarts"] == 0

    status = status_log
    status.wait_for(finishing, [("in_startup_processing", None), ("inactive", None)])
    assert status.of(giving_up) == [("in_startup_processing", None)]
    after = cluster.pod(giving_up)
    assert (
        after is not None and after["metadata"]["uid"] == giving_up_pod["metadata"]["uid"]
    )  # kept for its logs, not replaced
    wait_until(lambda: "RunnerCompleted" in cluster.event_reasons(finishing), what="RunnerCompleted event")
    assert {"PodCreated", "RunnerReady", "RunnerCompleted"} <= set(cluster.event_reasons(finishing))
    assert "RunnerGaveUp" in cluster.event_reasons(giving_up)
    rows = {scenario: worker(sessions, scenario) for scenario in (finishing, giving_up)}
    assert (
        rows[finishing] is not None and rows[finishing].status == "inactive" and rows[finishing].stopped_at is not None
    )
    assert rows[giving_up] is not None and rows[giving_up].status == "failed"


def test_crashing_runner_is_restarted_with_backoff_and_a_crash_loop_ends_failed(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
) -> None:
    start_operator()  # crash-loop threshold 3 within 60 s, backoff 0.5 s doubling
    cluster = Cluster(kube, kube_namespace)
    scenario = uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(scenario)])
    uids = [cluster.wait_pod(scenario)["metadata"]["uid"]]

    for restarts in (1, 2):
        cluster.set_pod(scenario, "Failed", exit_code=1, message="Traceback: boom")
        replacement = cluster.wait_pod(scenario, other_than=uids[-1])
        uids.append(replacement["metadata"]["uid"])
        body = cluster.vs(scenario)
        assert body is not None and body["status"]["restarts"] == restarts
        assert body["status"]["lastError"]["reason"] == "RunnerCrashed"
        assert len(cluster.pods()) == 1

    cluster.set_pod(scenario, "Failed", exit_code=137)
    body = cluster.wait_phase(scenario, "failed")
    assert body["status"]["lastError"]["reason"] == "RunnerCrashLoop" and body["status"]["restarts"] == 2
    assert conditions(body)["Failed"] == "True"

    status = status_log
    status.wait_for(scenario, [("in_startup_processing", None), ("failed", "RunnerCrashLoop")])
    final = cluster.pod(scenario)
    assert final is not None and final["metadata"]["uid"] == uids[-1]  # no fourth runner
    reasons = cluster.event_reasons(scenario)
    assert reasons.count("RunnerCrashed") == 2 and "RunnerRestarted" in reasons and "RunnerCrashLoop" in reasons
    row = worker(sessions, scenario)
    assert (
        row is not None
        and (row.status, row.restart_count) == ("failed", 2)
        and "RunnerCrashLoop" in (row.last_error or "")
    )
    assert status.of(scenario).count(("failed", "RunnerCrashLoop")) == 1


def test_shutdown_deletes_the_pod_and_ends_inactive_and_an_early_shutdown_is_never_deployed(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
) -> None:
    start_operator()
    cluster = Cluster(kube, kube_namespace)
    running, early = uuid.uuid4(), uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(running), shutdown(early), start(early)])
    cluster.wait_pod(running)
    cluster.set_pod(running, "Running", ready=True)
    cluster.wait_phase(running, "active")

    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(running)])
    body = cluster.wait_phase(running, "inactive")
    assert cluster.pod(running) is None and body["spec"]["desiredState"] == "inactive"
    assert conditions(body)["Stopped"] == "True"

    # The shutdown that overtook its start: an inactive object, never a Pod.
    early_body = cluster.wait_phase(early, "inactive")
    assert early_body["spec"]["desiredState"] == "inactive" and cluster.pod(early) is None
    assert "PodCreated" not in cluster.event_reasons(early)

    status = status_log
    status.wait_for(running, [("in_startup_processing", None), ("in_shutdown_processing", None), ("inactive", None)])
    status.wait_for(early, [("in_shutdown_processing", None), ("inactive", None)])
    assert {"Stopping", "Stopped"} <= set(cluster.event_reasons(running))
    for scenario in (running, early):
        row = worker(sessions, scenario)
        assert row is not None and (row.desired_state, row.status) == ("inactive", "inactive")


def test_deleting_the_videoscenario_cleans_up_through_the_finalizer(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    kube: client.ApiClient,
    kube_namespace: str,
    kubeconfig: str,
) -> None:
    start_operator()
    cluster = Cluster(kube, kube_namespace)
    scenario = uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(scenario, "rtsp://viewer:s3cret@cam.example/live")])
    cluster.wait_pod(scenario)
    body = cluster.vs(scenario)
    assert body is not None and "vap.dev/runner-cleanup" in body["metadata"]["finalizers"]

    kubectl(kubeconfig, "-n", kube_namespace, "delete", "vsc", f"vs-{scenario}", "--wait=false")
    wait_until(lambda: cluster.vs(scenario) is None, what="the VideoScenario to be gone")
    assert cluster.pod(scenario) is None
    secrets = [s.metadata.name for s in cluster.core.list_namespaced_secret(kube_namespace).items]
    assert f"vs-{scenario}-camera" not in secrets
    status_log.wait_for(scenario, [("in_startup_processing", None), ("inactive", None)])


def test_replaying_every_message_twice_creates_nothing_twice(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
) -> None:
    cluster = Cluster(kube, kube_namespace)
    kept, stopped = uuid.uuid4(), uuid.uuid4()
    secret_url = "rtsp://admin:pw@cam.example/a"
    first = start_operator()
    produce(
        kafka_settings,
        Topic.INIT_SCENARIO,
        [start(kept, secret_url), start(kept, secret_url), start(stopped), start(stopped)],
    )
    cluster.wait_pod(stopped)
    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(stopped), shutdown(stopped)])
    cluster.wait_phase(stopped, "inactive")
    pod_uid = cluster.wait_pod(kept)["metadata"]["uid"]
    first.stop()

    # A second operator with fresh consumer groups reads every init_scenario and to_deploy message again.
    prefix = kafka_settings.topic_prefix
    second = start_operator(
        VAP_ORCHESTRATOR__CONSUMER_GROUP=f"{prefix}orchestrator-replay",
        VAP_KUBERNETES__CONSUMER_GROUP=f"{prefix}kubernetes-replay",
    )
    to_deploy = TopicReader(kafka_settings, Topic.TO_DEPLOY)

    def replayed() -> bool:
        log = second.log()
        # The replayed deploys of `stopped` are dropped before any API call (its row says stopped).
        handled = (
            log.count("videoscenario ensured")
            + log.count("videoscenario stop requested")
            + log.count("to_deploy message not acted on")
        )
        return log.count('"scenario command"') == 6 and handled == len(to_deploy.poll(0.2))

    wait_until(replayed, what="every init_scenario and to_deploy message consumed again")
    to_deploy.close()
    status = status_log
    status.wait_for(stopped, [("in_startup_processing", None), ("in_shutdown_processing", None), ("inactive", None)])

    assert sorted(body["metadata"]["name"] for body in cluster.all_vs()) == sorted([f"vs-{kept}", f"vs-{stopped}"])
    assert [pod["metadata"]["uid"] for pod in cluster.pods()] == [pod_uid]  # the same Pod, never a second one
    assert cluster.phase(stopped) == "inactive"
    secrets = [
        s.metadata.name
        for s in cluster.core.list_namespaced_secret(kube_namespace).items
        if s.metadata.name.startswith("vs-")
    ]
    assert secrets == [f"vs-{kept}-camera"]
    with sessions() as session:
        assert len(session.scalars(select(Worker)).all()) == 2
    assert second.log().count('"verdict": "stale"') == 2 and '"verdict": "unknown"' not in second.log()
    # `stopped` never moves backwards: nothing after inactive.
    assert status.steps(stopped) == [
        ("in_startup_processing", None),
        ("in_shutdown_processing", None),
        ("inactive", None),
    ]


def test_restarting_the_operator_mid_reconcile_leaves_exactly_one_pod_per_scenario(
    start_operator: Any, kafka_settings: KafkaSettings, kube: client.ApiClient, kube_namespace: str
) -> None:
    cluster = Cluster(kube, kube_namespace)
    scenarios = [uuid.uuid4() for _ in range(20)]
    first = start_operator()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(scenario) for scenario in scenarios])
    wait_until(lambda: cluster.pods(), interval_seconds=0.02, what="the first Pod")
    first.kill()  # SIGKILL mid-reconcile: no clean-up, no goodbye to the peers or to the Kafka group
    assert len(cluster.pods()) < len(scenarios)

    start_operator()  # waits out the dead replica's peering lifetime and Kafka session, then resumes
    wait_until(lambda: len(cluster.pods()) == len(scenarios), timeout_seconds=60, what=f"{len(scenarios)} Pods")
    wait_until(lambda: all(cluster.phase(s) == "in_startup_processing" for s in scenarios), what="every status written")
    owners = {
        pod["metadata"]["ownerReferences"][0]["name"]: pod["metadata"]["ownerReferences"][0]["uid"]
        for pod in cluster.pods()
    }
    assert owners == {f"vs-{s}": cluster.vs(s)["metadata"]["uid"] for s in scenarios}  # type: ignore[index]
    assert len(cluster.all_vs()) == len(scenarios)


def test_two_replicas_only_one_acts_and_the_standby_takes_over(
    start_operator: Any, kafka_settings: KafkaSettings, kube: client.ApiClient, kube_namespace: str
) -> None:
    cluster = Cluster(kube, kube_namespace)
    leader = start_operator(VAP_KUBERNETES__PEERING_PRIORITY="200")
    standby = start_operator(VAP_KUBERNETES__PEERING_PRIORITY="100")

    def peers() -> dict[str, Any]:
        return (
            cluster.custom.get_namespaced_custom_object(
                "kopf.dev", "v1", kube_namespace, "kopfpeerings", "vap-operator"
            ).get("status")
            or {}
        )

    wait_until(lambda: len(peers()) == 2, what="both replicas in the peering object")

    first = uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(first)])
    cluster.wait_pod(first)
    cluster.wait_phase(first, "in_startup_processing")
    assert "Handler 'reconcile' succeeded" in leader.log()
    assert "Handler 'reconcile" not in standby.log() and "mirror_runner_pod" not in standby.log()

    leader.stop()  # a clean exit removes the leader from the peering object at once
    wait_until(lambda: "Resuming operations" in standby.log(), what="the standby to resume")
    second = uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(second)])
    cluster.wait_pod(second)
    cluster.wait_phase(second, "in_startup_processing")
    assert "Handler 'reconcile' succeeded" in standby.log()


def test_on_the_nodes_network_each_runner_pod_gets_its_own_port_and_a_freed_port_is_taken_again(
    start_operator: Any,
    kafka_settings: KafkaSettings,
    kube: client.ApiClient,
    kube_namespace: str,
    sessions: sessionmaker[Session],
) -> None:
    start_operator(
        VAP_KUBERNETES__HOST_NETWORK="true",
        VAP_KUBERNETES__HOST_PORT_FIRST="28300",
        VAP_KUBERNETES__HOST_PORT_LAST="28301",
    )
    cluster = Cluster(kube, kube_namespace)
    scenarios = [uuid.uuid4() for _ in range(3)]
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(scenario) for scenario in scenarios])
    no_port = "no free host port in 28300-28301"

    def the_waiting_one() -> uuid.UUID | None:
        waiting = [s for s in scenarios if (worker(sessions, s) or Worker()).wait_reason == no_port]
        return waiting[0] if len(waiting) == 1 and len(cluster.pods()) == 2 else None

    waiting = wait_until(the_waiting_one, what="two Pods and one scenario waiting for a host port")
    ports = {s: host_port_of(cluster.pod(s)) for s in scenarios if s != waiting}
    assert sorted(ports.values()) == [28300, 28301]
    # The workers row says so a moment before the VideoScenario's status does (two writes): wait for both.
    cluster.wait_phase(waiting, "in_startup_processing")

    def waiting_condition() -> dict[str, Any] | None:
        status = (cluster.vs(waiting) or {}).get("status", {})
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        return ready[0] if ready and ready[0].get("reason") == "WaitingForCapacity" else None

    ready = wait_until(waiting_condition, what="the waiting VideoScenario's Ready condition: WaitingForCapacity")
    assert ready["message"] == no_port

    # One scenario is shut down: once its Pod is gone, the waiting one gets the port it had.
    stopped = next(iter(ports))
    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(stopped)])
    cluster.wait_phase(stopped, "inactive")
    assert cluster.pod(stopped) is None
    assert host_port_of(cluster.wait_pod(waiting, timeout_seconds=20)) == ports[stopped]
    wait_until(
        lambda: (worker(sessions, waiting) or Worker()).wait_reason is None,
        what="the wait to end in workers.wait_reason",
    )
