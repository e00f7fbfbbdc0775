"""The Kubernetes objects the operator builds, and the status <-> decision translation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from vap_common.address_policy import AddressPolicy
from vap_common.contracts import DeployCommand, DetectorSpec
from vap_common.lifecycle import ScenarioStatus
from vap_common.runner_contract import RUNNER_HTTP_PORT
from vap_common.settings import KafkaSettings
from vap_operator.decisions import Crash, DesiredState, Plan, PodPhase, worker_id_for
from vap_operator.kube import manifests
from vap_operator.kube.status import (
    from_timestamp,
    memory_from_status,
    observe_pod,
    render_status,
    runner_http_ports,
    to_timestamp,
)
from vap_operator.settings import KubernetesSettings, OperatorSettings, RunnerLaunchSettings

SCENARIO = uuid.UUID("0b5f1c2e-7d4a-4e3b-9a8c-1f2e3d4c5b6a")
KAFKA = KafkaSettings(bootstrap_servers="kafka:9092", topic_prefix="p.")
CAMERA_POLICY = AddressPolicy()


def command(camera_url: str = "rtsp://cam.example/stream") -> DeployCommand:
    return DeployCommand(
        scenario_uuid=SCENARIO,
        worker_id=worker_id_for(SCENARIO),
        action="deploy",
        camera_url=camera_url,
        detector=DetectorSpec(name="hog_person", settings={"threshold": 0.4}),
    )


def stored(body: dict[str, object], uid: str = "cr-uid") -> dict[str, object]:
    """What the API server would return: the object with a UID."""
    return {**body, "metadata": {**body["metadata"], "uid": uid}}  # type: ignore[dict-item]


def test_videoscenario_carries_the_plain_url_and_the_scenario() -> None:
    body = manifests.videoscenario(command(), max_workers=2, desired=DesiredState.ACTIVE)
    assert body["metadata"]["name"] == f"vs-{SCENARIO}"
    assert body["spec"] == {
        "scenarioUUID": str(SCENARIO),
        "workerId": f"w-{SCENARIO}",
        "cameraURL": "rtsp://cam.example/stream",
        "detector": {"name": "hog_person", "settings": {"threshold": 0.4}},
        "maxWorkers": 2,
        "desiredState": "active",
    }


def test_the_tenant_labels_the_videoscenario_its_secret_and_its_runner_pod() -> None:
    acme = command("rtsp://admin:pw@cam.example/stream").model_copy(update={"tenant": "acme"})
    body = stored(manifests.videoscenario(acme, max_workers=1, desired=DesiredState.ACTIVE))
    pod = manifests.runner_pod(
        body, kubernetes=KubernetesSettings(), runner=RunnerLaunchSettings(), kafka=KAFKA, camera_policy=CAMERA_POLICY
    )
    for labelled in (body, manifests.camera_secret(acme), pod):
        assert labelled["metadata"]["labels"][manifests.LABEL_TENANT] == "acme"  # type: ignore[index]
    # A deploy command sent before tenants existed belongs to the default tenant.
    assert manifests.labels_for(command())[manifests.LABEL_TENANT] == "default"


def test_credentials_go_into_a_secret_never_into_the_spec() -> None:
    secret_url = "rtsp://admin:hunter2@cam.example/stream"
    body = manifests.videoscenario(command(secret_url), max_workers=1, desired=DesiredState.ACTIVE)
    assert "hunter2" not in json.dumps(body)
    assert body["spec"]["cameraSecretRef"] == {"name": f"vs-{SCENARIO}-camera", "key": "url"}
    secret = manifests.camera_secret(command(secret_url))
    assert secret["stringData"] == {"url": secret_url} and secret["metadata"]["name"] == f"vs-{SCENARIO}-camera"


def test_runner_pod_spec() -> None:
    kube = KubernetesSettings(
        runner_image="registry.example/vap-runner:1.2", cpu_limit="3", runner_service_account="runner"
    )
    body = stored(manifests.videoscenario(command(), max_workers=2, desired=DesiredState.ACTIVE))
    pod = manifests.runner_pod(
        body,
        kubernetes=kube,
        runner=RunnerLaunchSettings(target_fps=5, stop_grace_seconds=20),
        kafka=KAFKA,
        camera_policy=CAMERA_POLICY,
    )

    assert pod["metadata"]["name"] == f"vs-{SCENARIO}-runner"
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "vap.dev/v1alpha1",
            "kind": "VideoScenario",
            "name": f"vs-{SCENARIO}",
            "uid": "cr-uid",
            "controller": True,
        }
    ]
    assert pod["metadata"]["labels"][manifests.LABEL_MANAGED_BY] == "vap-operator"
    spec = pod["spec"]
    assert (spec["restartPolicy"], spec["automountServiceAccountToken"], spec["terminationGracePeriodSeconds"]) == (
        "Never",
        False,
        20,
    )
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    assert spec["serviceAccountName"] == "runner"
    (container,) = spec["containers"]
    assert container["image"] == "registry.example/vap-runner:1.2"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"][0]["containerPort"] == RUNNER_HTTP_PORT
    assert container["resources"]["limits"]["cpu"] == "3"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # The frame slots live in /dev/shm: more than a container runtime's default 64 MiB, in memory.
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}} in spec["volumes"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["VAP_SCENARIO_UUID"] == str(SCENARIO)
    assert env["VAP_WORKER_ID"] == f"w-{SCENARIO}"
    assert env["VAP_CAMERA_URL"] == "rtsp://cam.example/stream"
    assert env["VAP_DETECTOR__NAME"] == "hog_person" and json.loads(env["VAP_DETECTOR__SETTINGS"]) == {"threshold": 0.4}
    assert env["VAP_MAX_WORKERS"] == "2" and env["VAP_TARGET_FPS"] == "5.0"
    assert env["VAP_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092" and env["VAP_KAFKA__TOPIC_PREFIX"] == "p."
    assert env["VAP_HTTP_PORT"] == str(RUNNER_HTTP_PORT)
    # One grace value: the runner plans its drain within the time before the kubelet's SIGKILL.
    assert env["VAP_GRACE_PERIOD_SECONDS"] == "20.0"


def test_by_default_a_runner_pod_has_its_own_network_the_runners_port_and_any_node() -> None:
    body = stored(manifests.videoscenario(command(), max_workers=1, desired=DesiredState.ACTIVE))
    spec = manifests.runner_pod(
        body, kubernetes=KubernetesSettings(), runner=RunnerLaunchSettings(), kafka=KAFKA, camera_policy=CAMERA_POLICY
    )["spec"]
    assert not {"hostNetwork", "dnsPolicy", "nodeSelector"} & spec.keys()
    (container,) = spec["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": RUNNER_HTTP_PORT, "protocol": "TCP"}]
    assert {"name": "VAP_HTTP_PORT", "value": str(RUNNER_HTTP_PORT)} in container["env"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_on_the_nodes_network_a_runner_pod_listens_on_its_own_port_and_is_probed_on_loopback() -> None:
    kube = KubernetesSettings(host_network=True, probe_host="127.0.0.1")
    body = stored(manifests.videoscenario(command(), max_workers=1, desired=DesiredState.ACTIVE))
    pod = manifests.runner_pod(
        body, kubernetes=kube, runner=RunnerLaunchSettings(), kafka=KAFKA, camera_policy=CAMERA_POLICY, http_port=28301
    )
    spec = pod["spec"]
    assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    (container,) = spec["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 28301, "protocol": "TCP"}]
    assert {"name": "VAP_HTTP_PORT", "value": "28301"} in container["env"]
    # By name: the probes follow the port; by host: a node without a pod network reaches its Pods on loopback.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "host": "127.0.0.1"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "host": "127.0.0.1"}
    assert runner_http_ports([pod]) == {28301}  # what the next Pod's port choice reads


def test_a_node_selector_places_runner_pods_on_matching_nodes_only() -> None:
    kube = KubernetesSettings(node_selector={"vap.dev/pool": "gpu"})
    body = stored(manifests.videoscenario(command(), max_workers=1, desired=DesiredState.ACTIVE))
    spec = manifests.runner_pod(
        body, kubernetes=kube, runner=RunnerLaunchSettings(), kafka=KAFKA, camera_policy=CAMERA_POLICY
    )["spec"]
    assert spec["nodeSelector"] == {"vap.dev/pool": "gpu"} and "hostNetwork" not in spec


def test_a_fractional_stop_grace_is_rounded_up_never_down_to_an_immediate_kill() -> None:
    body = stored(manifests.videoscenario(command(), max_workers=1, desired=DesiredState.ACTIVE))
    pod = manifests.runner_pod(
        body,
        kubernetes=KubernetesSettings(),
        runner=RunnerLaunchSettings(stop_grace_seconds=0.5),
        kafka=KAFKA,
        camera_policy=CAMERA_POLICY,
    )
    assert pod["spec"]["terminationGracePeriodSeconds"] == 1
    assert {"name": "VAP_GRACE_PERIOD_SECONDS", "value": "0.5"} in pod["spec"]["containers"][0]["env"]
    with pytest.raises(ValueError, match="stop_grace_seconds"):
        RunnerLaunchSettings(stop_grace_seconds=0)  # the runner refuses a grace of 0: it would not start


def test_runner_pod_reads_a_credentialed_url_from_the_secret() -> None:
    body = stored(
        manifests.videoscenario(
            command("rtsp://admin:hunter2@cam.example/s"), max_workers=1, desired=DesiredState.ACTIVE
        )
    )
    pod = manifests.runner_pod(
        body, kubernetes=KubernetesSettings(), runner=RunnerLaunchSettings(), kafka=KAFKA, camera_policy=CAMERA_POLICY
    )
    assert "hunter2" not in json.dumps(pod)
    camera = [item for item in pod["spec"]["containers"][0]["env"] if item["name"] == "VAP_CAMERA_URL"]
    assert camera == [
        {"name": "VAP_CAMERA_URL", "valueFrom": {"secretKeyRef": {"name": f"vs-{SCENARIO}-camera", "key": "url"}}}
    ]


def test_runner_pod_gets_the_runner_settings_the_operator_passes_on_and_the_named_ones_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "VAP_RUNNER__ENVIRONMENT", '{"VAP_DOWNSTREAM_OUTAGE_LIMIT_SECONDS": "600", "VAP_MAX_WORKERS": "9"}'
    )
    runner = OperatorSettings().runner
    body = stored(manifests.videoscenario(command(), max_workers=2, desired=DesiredState.ACTIVE))
    env = {
        item["name"]: item.get("value")
        for item in manifests.runner_pod(
            body, kubernetes=KubernetesSettings(), runner=runner, kafka=KAFKA, camera_policy=CAMERA_POLICY
        )["spec"]["containers"][0]["env"]
    }
    assert env["VAP_DOWNSTREAM_OUTAGE_LIMIT_SECONDS"] == "600" and env["VAP_MAX_WORKERS"] == "2"


def test_runner_pod_gets_the_operators_camera_policy_and_every_platform_server_it_knows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner checks the camera address again before it connects, refusing what the operator knows
    as the platform's: its database, Kafka, the Kubernetes API and what it is told besides."""
    monkeypatch.setenv("VAP_CAMERA_POLICY__ALLOW", "127.0.0.0/8")
    monkeypatch.setenv("VAP_CAMERA_POLICY__DENY", "10.9.0.0/16,.corp.example")
    monkeypatch.setenv("VAP_CAMERA_POLICY__PLATFORM", "vault.internal:8200")
    monkeypatch.setenv("VAP_DATABASE__URL", "postgresql+psycopg2://vap:pw@db.internal:5432/vap")
    monkeypatch.setenv("VAP_KAFKA__BOOTSTRAP_SERVERS", "kafka-0:9092,[fd00::9]:9092")
    # Not to be loosened through the settings the operator passes on as they are.
    monkeypatch.setenv("VAP_RUNNER__ENVIRONMENT", '{"VAP_CAMERA_POLICY__ALLOW": "0.0.0.0/0"}')
    settings = OperatorSettings()
    policy = settings.camera_policy.policy(platform=[*settings.platform_servers(), ("10.96.0.1", 443)])
    body = stored(manifests.videoscenario(command(), max_workers=1, desired=DesiredState.ACTIVE))
    pod = manifests.runner_pod(
        body, kubernetes=KubernetesSettings(), runner=settings.runner, kafka=KAFKA, camera_policy=policy
    )
    env = {item["name"]: item.get("value") for item in pod["spec"]["containers"][0]["env"]}
    assert env["VAP_CAMERA_POLICY__ALLOW"] == "127.0.0.0/8"
    assert env["VAP_CAMERA_POLICY__DENY"] == "10.9.0.0/16,.corp.example"
    assert env["VAP_CAMERA_POLICY__PLATFORM"] == (
        "kafka-0:9092,[fd00::9]:9092,db.internal:5432,10.96.0.1:443,vault.internal:8200"
    )


def test_the_runner_environment_setting_holds_runner_settings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_RUNNER__ENVIRONMENT", '{"LD_PRELOAD": "/tmp/x.so"}')
    with pytest.raises(ValidationError, match="VAP_"):
        OperatorSettings()


def pod_body(
    phase: str, *, ready: bool = False, exit_code: int | None = None, owner: str = "cr-uid", deleting: bool = False
) -> dict[str, object]:
    state = (
        {"terminated": {"exitCode": exit_code, "message": "DecodeError: bad stream"}}
        if exit_code is not None
        else {"running": {}}
    )
    metadata: dict[str, object] = {
        "uid": "pod-uid",
        "ownerReferences": [{"uid": owner, "kind": "VideoScenario", "controller": True}],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-25T00:00:00Z"
    return {
        "metadata": metadata,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"state": state}],
        },
    }


def test_observe_pod_reads_phase_readiness_exit_code_and_ownership() -> None:
    assert observe_pod(None, owner_uid="cr-uid") is None
    running = observe_pod(pod_body("Running", ready=True), owner_uid="cr-uid")
    assert running is not None and (running.phase, running.ready, running.owned, running.exit_code) == (
        PodPhase.RUNNING,
        True,
        True,
        None,
    )
    failed = observe_pod(pod_body("Failed", exit_code=3), owner_uid="cr-uid")
    assert failed is not None and (failed.exit_code, failed.message) == (3, "DecodeError: bad stream")
    foreign = observe_pod(pod_body("Pending", owner="other", deleting=True), owner_uid="cr-uid")
    assert foreign is not None and (foreign.owned, foreign.deleting) == (False, True)


def test_status_round_trips_into_memory() -> None:
    now = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
    crash = Crash("pod-1", now.timestamp(), 1)
    plan = Plan(
        phase=ScenarioStatus.FAILED,
        failed=("RunnerCrashLoop", "3 crashes"),
        restarts=2,
        last_error=("RunnerCrashLoop", "3 crashes"),
    )
    status = render_status(plan, {}, crashes=(crash,), generation=3, pod_name="p", now=now)
    memory = memory_from_status(status)
    assert memory.failed_reason == "RunnerCrashLoop" and memory.stopped_reason is None
    assert memory.crashes == (crash,) and memory.restarts == 2
    assert status["phase"] == "failed" and status["stoppedAt"] == "2026-11-25T12:00:00.123456Z"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "False",
        "Failed": "True",
        "Stopped": "False",
    }
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert from_timestamp(to_timestamp(now)) == pytest.approx(now.timestamp())


def test_condition_transition_time_changes_only_with_its_status() -> None:
    t1 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    t2 = datetime(2026, 11, 25, 12, 5, 0, tzinfo=UTC)
    first = render_status(
        Plan(phase=ScenarioStatus.ACTIVE, ready=True), {}, crashes=(), generation=1, pod_name="p", now=t1
    )
    again = render_status(
        Plan(phase=ScenarioStatus.ACTIVE, ready=True), first, crashes=(), generation=2, pod_name="p", now=t2
    )
    ready = {c["type"]: c for c in again["conditions"]}["Ready"]
    assert ready["lastTransitionTime"] == to_timestamp(t1) and ready["observedGeneration"] == 2
    assert "startedAt" not in again  # set once, by the first render
    lost = render_status(
        Plan(phase=ScenarioStatus.IN_STARTUP_PROCESSING, ready=False),
        again,
        crashes=(),
        generation=2,
        pod_name="p",
        now=t2,
    )
    assert {c["type"]: c for c in lost["conditions"]}["Ready"]["lastTransitionTime"] == to_timestamp(t2)


def test_settings_read_groups_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_RUNTIME", "kubernetes")
    monkeypatch.setenv("VAP_LOCAL__RUNNER_COMMAND", '["python3", "fake.py"]')
    monkeypatch.setenv("VAP_RESTART__CRASH_LOOP_THRESHOLD", "3")
    monkeypatch.setenv("VAP_KUBERNETES__NAMESPACE", "vap")
    settings = OperatorSettings()
    assert (settings.runtime, settings.local.runner_command, settings.restart.crash_loop_threshold) == (
        "kubernetes",
        ["python3", "fake.py"],
        3,
    )
    assert settings.kubernetes.resolved_namespace() == "vap"


def test_settings_refuse_a_backoff_longer_than_the_crash_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_RESTART__BACKOFF_MAX_SECONDS", "900")
    monkeypatch.setenv("VAP_RESTART__CRASH_LOOP_WINDOW_SECONDS", "600")
    with pytest.raises(ValidationError, match="backoff_max_seconds"):
        OperatorSettings()


def test_settings_read_the_runner_pods_network_and_placement_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = KubernetesSettings()
    assert (
        defaults.host_network,
        defaults.host_port_first,
        defaults.host_port_last,
        defaults.node_selector,
        defaults.probe_host,
    ) == (False, 28300, 28399, {}, None)
    monkeypatch.setenv("VAP_KUBERNETES__HOST_NETWORK", "true")
    monkeypatch.setenv("VAP_KUBERNETES__HOST_PORT_FIRST", "30000")
    monkeypatch.setenv("VAP_KUBERNETES__HOST_PORT_LAST", "30000")  # a range of one port
    monkeypatch.setenv("VAP_KUBERNETES__NODE_SELECTOR", '{"vap.dev/pool": "gpu"}')
    monkeypatch.setenv("VAP_KUBERNETES__PROBE_HOST", "127.0.0.1")
    kube = OperatorSettings().kubernetes
    assert (kube.host_network, kube.host_port_first, kube.host_port_last, kube.node_selector, kube.probe_host) == (
        True,
        30000,
        30000,
        {"vap.dev/pool": "gpu"},
        "127.0.0.1",
    )


@pytest.mark.parametrize(("first", "last"), [(28400, 28399), (80, 28399), (65000, 65536)])
def test_settings_refuse_host_ports_that_are_not_a_range_of_unprivileged_ports(first: int, last: int) -> None:
    with pytest.raises(ValidationError, match="host_port_first..host_port_last"):
        KubernetesSettings(host_port_first=first, host_port_last=last)


def test_a_scenarios_own_analysis_rate_goes_into_its_videoscenario_and_its_runner() -> None:
    def runner_env(videoscenario: dict[str, object]) -> dict[str, str | None]:
        pod = manifests.runner_pod(
            videoscenario,
            kubernetes=KubernetesSettings(),
            runner=RunnerLaunchSettings(target_fps=5),
            kafka=KAFKA,
            camera_policy=CAMERA_POLICY,
        )
        return {item["name"]: item.get("value") for item in pod["spec"]["containers"][0]["env"]}

    rated = stored(
        manifests.videoscenario(
            command().model_copy(update={"analysis_fps": 2.5}), max_workers=1, desired=DesiredState.ACTIVE
        )
    )
    assert rated["spec"]["analysisFPS"] == 2.5 and runner_env(rated)["VAP_TARGET_FPS"] == "2.5"  # type: ignore[index]
    # Without a rate of its own (registered before rates existed, or not asking): the runtime's.
    plain = stored(manifests.videoscenario(command(), max_workers=1, desired=DesiredState.ACTIVE))
    assert "analysisFPS" not in plain["spec"] and runner_env(plain)["VAP_TARGET_FPS"] == "5.0"  # type: ignore[operator]
