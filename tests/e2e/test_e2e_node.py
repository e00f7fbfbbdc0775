"""The whole platform on the local stack's real node: `helm install` of charts/vap with
values-local.yaml runs the migration Job and the api, relay, inbox and operator Deployments as
containers from the images built on this machine, and the operator's runner Pods run as containers
too. The test talks to the API from the host, as a user would, and to the cluster with kubectl.

One release serves the module (an install takes about a minute); the tests run in file order and
the last one uninstalls it.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, text

from dev.platform_stack import RtspCamera
from tests.conftest import ROOT, create_namespace, kubectl, remove_finalizers
from tests.e2e.e2e_support import PERSON_VIDEO, Api, ResultsTopic, check_stored_equals_published
from tests.helpers import wait_until
from vap_api.auth.keys import generate_key
from vap_common.db import make_engine
from vap_common.kafka import ensure_topics
from vap_common.settings import DatabaseServiceSettings, DatabaseSettings
from vap_common.topics import all_topic_names
from vap_operator.kube.manifests import RUNNER_LABELS

CHART = ROOT / "charts" / "vap"
API_URL = "http://127.0.0.1:28000"  # api.port of values-local.yaml (hostNetwork: the node's port)
RUNNER_SELECTOR = ",".join(f"{key}={value}" for key, value in RUNNER_LABELS.items())


@dataclass
class Release:
    kubeconfig: str
    namespace: str
    engine: Engine
    kafka: Any
    database: dict[str, str]  # the VAP_DATABASE__* settings of the release
    api_key: str  # registered by the chart's bootstrapApiKey hook
    installed: bool = True

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, "-n", self.namespace, *args, check=check)

    def json(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", *args, "-o", "json").stdout))

    def runner_pods(self) -> list[dict[str, Any]]:
        return list(self.json("pods", "-l", RUNNER_SELECTOR)["items"])

    def runner_pod(self, scenario: uuid.UUID) -> dict[str, Any] | None:
        result = self.kubectl("get", "pod", f"vs-{scenario}-runner", "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def videoscenario(self, scenario: uuid.UUID) -> dict[str, Any]:
        return self.json("videoscenario", f"vs-{scenario}")


def helm(*args: str, timeout_seconds: float = 420) -> str:
    result = subprocess.run(["helm", *args], capture_output=True, text=True, timeout=timeout_seconds, check=False)
    assert result.returncode == 0, f"helm {' '.join(args[:2])} failed: {result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def release(
    kubeconfig: str,
    videoscenario_crd: str,
    admin_engine: Engine,
    kafka_admin: AdminClient,
    stack_settings: DatabaseServiceSettings,
) -> Iterator[Release]:
    """charts/vap installed on the node, in a namespace, schema and topic prefix of the module's own."""
    suffix = uuid.uuid4().hex[:8]
    namespace, schema, prefix = f"t-node-{suffix}", f"t_node_{suffix}", f"tnode{suffix}."
    with admin_engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    kafka = stack_settings.kafka.model_copy(update={"topic_prefix": prefix})
    ensure_topics(kafka_admin, all_topic_names(prefix))
    create_namespace(kubeconfig, namespace)
    engine = make_engine(DatabaseSettings(url=stack_settings.database.url, schema_name=schema))
    database = {"VAP_DATABASE__URL": stack_settings.database.url, "VAP_DATABASE__SCHEMA_NAME": schema}
    state = Release(kubeconfig, namespace, engine, kafka, database, api_key=generate_key())
    # The first key comes from a Secret of the user's, as in a GitOps install: no vap-admin step.
    kubectl(
        kubeconfig, "-n", namespace, "create", "secret", "generic", "site-key", f"--from-literal=key={state.api_key}"
    )
    try:
        helm(
            "install", "vap", str(CHART), "--namespace", namespace, "--kubeconfig", kubeconfig,
            "-f", str(CHART / "values-local.yaml"),
            "--set", f"database.url={stack_settings.database.url}", "--set", f"database.schemaName={schema}",
            "--set", f"kafka.topicPrefix={prefix}", "--set", "bootstrapApiKey.existingSecret=site-key",
            "--set", "bootstrapApiKey.tenant=node", "--wait", "--timeout", "6m",
        )  # fmt: skip
        wait_ready(state)
        yield state
    finally:
        if state.installed:
            helm("uninstall", "vap", "--namespace", namespace, "--kubeconfig", kubeconfig, "--wait", "--timeout", "2m")
        kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
        remove_finalizers(kubeconfig, namespace, "videoscenarios.vap.dev")
        engine.dispose()
        with admin_engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        for future in kafka_admin.delete_topics(all_topic_names(prefix)).values():
            future.result(timeout=30)


def wait_ready(release: Release) -> None:
    """Every Deployment with all its replicas Ready. (helm's --wait is not enough: with one replica on one
    node the chart allows the one Pod to be unavailable during a rollout, so helm waits for none.)"""

    def ready() -> bool:
        deployments = release.json("deployments")["items"]
        return bool(deployments) and all(
            item["status"].get("readyReplicas") == item["spec"]["replicas"]
            and item["status"].get("updatedReplicas") == item["spec"]["replicas"]
            for item in deployments
        )

    try:
        wait_until(ready, timeout_seconds=180, interval_seconds=1, what="every Deployment Ready")
    except AssertionError as error:
        pods = release.kubectl("get", "pods", "-o", "wide").stdout
        events = release.kubectl("get", "events", "--sort-by=.lastTimestamp").stdout[-4000:]
        raise AssertionError(f"{error}\n{pods}\n{events}") from None


@pytest.fixture
def api(release: Release) -> Iterator[Api]:
    """The release's bootstrap key (registered by its hook; `vap-admin keys create` is tested elsewhere)."""
    client = Api(API_URL, api_key=release.api_key)
    yield client
    client.close()


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    """A live camera on loopback that asks for a password (runner Pods use the host's network)."""
    source = RtspCamera(PERSON_VIDEO, credentials=("viewer", f"pw-{uuid.uuid4().hex[:12]}"))
    source.start()
    yield source
    source.stop()


def _running(pod: dict[str, Any] | None) -> bool:
    if pod is None or pod["status"].get("phase") != "Running":
        return False
    return all(
        status.get("ready") and "running" in status["state"] for status in pod["status"].get("containerStatuses", [])
    )


def wait_running(release: Release, scenario: uuid.UUID, *, other_than: str | None = None) -> dict[str, Any]:
    """The scenario's runner Pod, its container running and Ready (its readiness probe passed)."""

    def found() -> dict[str, Any] | None:
        pod = release.runner_pod(scenario)
        return pod if _running(pod) and pod is not None and pod["metadata"]["uid"] != other_than else None

    return wait_until(
        found, timeout_seconds=120, interval_seconds=1, what=f"a running, ready runner container of {scenario}"
    )


def test_helm_install_runs_every_component_on_the_node_with_its_probes(release: Release, api: Api) -> None:
    deployments = release.json("deployments")["items"]
    assert sorted(item["metadata"]["name"].removeprefix("vap-") for item in deployments) == [
        "api",
        "inbox",
        "operator",
        "relay",
    ]
    for deployment in deployments:
        assert deployment["status"].get("readyReplicas") == deployment["spec"]["replicas"], deployment["status"]
    for pod in release.json("pods")["items"]:
        assert pod["spec"]["nodeName"] == "localhost" and _running(pod), pod["status"]
    # The migration Job ran (and was removed by its hook policy): the tables are in the release's schema.
    with release.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    # The operator talks to the API server as its own ServiceAccount (a token the kubelet mounts).
    [operator] = [pod for pod in release.json("pods")["items"] if pod["metadata"]["name"].startswith("vap-operator-")]
    assert operator["spec"]["serviceAccountName"] == "vap-operator"
    assert not [item for item in operator["spec"]["containers"][0].get("env", []) if item["name"] == "KUBECONFIG"]
    assert api.http.get("/healthz").status_code == 200


def test_a_scenario_runs_in_a_runner_container_survives_its_pod_deleted_and_shuts_down(
    release: Release, api: Api, camera: RtspCamera
) -> None:
    password = camera.credentials[1] if camera.credentials else ""
    scenario = api.init(camera.url, detector="mock", name="on the node")
    pod = wait_running(release, scenario)
    [container] = pod["spec"]["containers"]
    assert pod["spec"]["hostNetwork"] is True and container["image"].endswith("vap-runner:dev")

    # The password reaches the container only through its Secret; the camera refuses any other login.
    assert password not in json.dumps(pod) and password not in json.dumps(release.videoscenario(scenario))
    assert password not in json.dumps(api.scenario(scenario))
    [camera_env] = [item for item in container["env"] if item["name"] == "VAP_CAMERA_URL"]
    assert "secretKeyRef" in camera_env["valueFrom"]
    api.wait_status(scenario, "active", timeout_seconds=90)
    wait_until(lambda: len(api.frame_numbers(scenario)) >= 3, timeout_seconds=60, what="3 results through the API")
    table = release.kubectl("get", "videoscenarios").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "UUID", "TENANT", "PHASE", "POD"], table
    [row] = [line.split() for line in table[1:] if str(scenario) in line]
    assert row[2:5] == ["node", "active", f"vs-{scenario}-runner"], table  # the API key's tenant

    # kubectl delete pod mid-stream: the operator starts a new runner and the results resume.
    release.kubectl("delete", "pod", f"vs-{scenario}-runner", "--wait=false")
    replaced = wait_running(release, scenario, other_than=pod["metadata"]["uid"])
    assert replaced["metadata"]["uid"] != pod["metadata"]["uid"]
    before = len(api.frame_numbers(scenario))
    wait_until(
        lambda: len(api.frame_numbers(scenario)) >= before + 3,
        timeout_seconds=90,
        what="results after the Pod was replaced",
    )

    assert api.shutdown(scenario)["status"] == "init_shutdown"
    wait_until(
        lambda: release.runner_pod(scenario) is None, timeout_seconds=60, what="the runner Pod gone after shutdown"
    )
    api.wait_status(scenario, "inactive", timeout_seconds=60)
    assert release.videoscenario(scenario)["status"]["phase"] == "inactive"

    # Two runs (before and after the deletion), each result stored exactly once.
    topic = ResultsTopic(release.kafka)
    try:
        runs = check_stored_equals_published(release.engine, topic, scenario)
    finally:
        topic.close()
    assert len(runs) == 2 and all(runs.values()), runs


def test_helm_upgrade_keeps_a_running_scenario_and_a_crashing_runner_fails_with_runner_crash_loop(
    release: Release, api: Api, camera: RtspCamera
) -> None:
    running = api.init(camera.url, detector="mock", name="kept through the upgrade")
    kept = wait_running(release, running)
    api.wait_status(running, "active", timeout_seconds=90)

    # The upgrade restarts the operator with runners that cannot start in their memory limit (the
    # kernel OOM-kills them) and a crash-loop threshold of 2: new scenarios crash, the running one stays.
    helm(
        "upgrade", "vap", str(CHART), "--namespace", release.namespace,
        "--kubeconfig", release.kubeconfig, "--reuse-values",
        "--set", "runner.resources.requests.memory=24Mi", "--set", "runner.resources.limits.memory=24Mi",
        "--set-string", "operator.settings.VAP_RESTART__CRASH_LOOP_THRESHOLD=2",
        "--set-string", "operator.settings.VAP_RESTART__BACKOFF_BASE_SECONDS=1", "--wait", "--timeout", "4m",
    )  # fmt: skip
    wait_ready(release)
    crashing = api.init(camera.url, detector="mock", name="crashes")
    failed = api.wait_status(crashing, "failed", timeout_seconds=120)
    assert failed["error_reason"] == "RunnerCrashLoop", failed
    status = release.videoscenario(crashing)["status"]
    assert status["phase"] == "failed" and status["lastError"]["reason"] == "RunnerCrashLoop", status
    reasons = [
        item["reason"]
        for item in release.json("events", "--field-selector", f"involvedObject.name=vs-{crashing}")["items"]
    ]
    assert "RunnerCrashed" in reasons and "RunnerCrashLoop" in reasons, reasons

    after = release.runner_pod(running)
    assert after is not None and after["metadata"]["uid"] == kept["metadata"]["uid"] and _running(after)
    assert api.status(running) == "active"
    frames = len(api.frame_numbers(running))
    wait_until(
        lambda: len(api.frame_numbers(running)) > frames,
        timeout_seconds=60,
        what="results of the kept scenario after the upgrade",
    )


def test_helm_uninstall_leaves_no_runner_pods_behind(release: Release, api: Api, camera: RtspCamera) -> None:
    scenario = api.init(camera.url, detector="mock", name="running at uninstall")
    wait_until(lambda: release.runner_pod(scenario) is not None, timeout_seconds=60, what="the runner Pod")
    assert release.runner_pods()
    helm(
        "uninstall",
        "vap",
        "--namespace",
        release.namespace,
        "--kubeconfig",
        release.kubeconfig,
        "--wait",
        "--timeout",
        "3m",
    )
    release.installed = False
    wait_until(lambda: not release.runner_pods(), timeout_seconds=60, what="no runner Pods after helm uninstall")
    assert not release.json("videoscenarios")["items"]
    assert not [pod for pod in release.json("pods")["items"] if pod["metadata"].get("deletionTimestamp") is None]
