"""charts/vap with the real helm (built by ./dev/infra up) and the real kube-apiserver: lint, the
rendered objects checked one by one (with the test values, the defaults and values-local.yaml), a
server-side dry run of everything, and `helm install` into a fresh namespace. Nothing runs Pods here:
the installed Deployments ask for a node label no node has (OFF_THE_NODE), so their Pods stay Pending
even where a kubelet runs beside the API server."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import kubectl
from tests.unit.deploy.deploy_support import ROOT, SETTINGS_BY_COMMAND, console_scripts, load_settings, unknown_setting
from vap_common.address_policy import AddressPolicy
from vap_common.camera_secrets import CameraKeyring, generate_key
from vap_common.contracts import DeployCommand
from vap_common.runner_contract import RUNNER_HTTP_PORT
from vap_common.settings import KafkaSettings
from vap_operator.decisions import DesiredState
from vap_operator.kube import manifests
from vap_operator.kube.manifests import RUNNER_LABELS
from vap_operator.settings import KubernetesSettings, OperatorSettings, RunnerLaunchSettings

CHART = ROOT / "charts" / "vap"
DATABASE_URL = "postgresql+psycopg2://vap:chart-test-password@postgres.example:5432/vap"
# A real scheduler and kubelet run on this API server: the Pods of the installed Deployments must stay
# Pending, so they ask for a node label no node has (hooks are skipped, and no operator runs runners).
OFF_THE_NODE = {"vap.local/kubelet": "none"}
# Values that switch every optional part on, and set one extra setting per process.
TEST_VALUES = {
    "database": {"url": DATABASE_URL, "schemaName": "vap_chart"},
    "kafka": {
        "bootstrapServers": "kafka-0.example:9092,kafka-1.example:9092",
        "topicPrefix": "chart.",
        "createTopics": True,
    },
    "networkPolicy": {"enabled": True, "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
    "api": {"settings": {"VAP_PREDICTION_MAX_LIMIT": "500"}, "nodeSelector": OFF_THE_NODE},
    "relay": {"settings": {"VAP_RELAY__BATCH_SIZE": 100}, "nodeSelector": OFF_THE_NODE},
    "inbox": {"settings": {"VAP_INBOX__BATCH_SIZE": 500}, "nodeSelector": OFF_THE_NODE},
    "operator": {"settings": {"VAP_RESTART__CRASH_LOOP_THRESHOLD": 3}, "nodeSelector": OFF_THE_NODE},
    "runner": {"maxWorkers": 2, "targetFps": 5, "capacity": 40},
}
COMPONENTS = {"api": "vap-api", "relay": "vap-relay", "inbox": "vap-inbox", "operator": "vap-operator"}
# The hook Jobs: schema migrations before install/upgrade, and the runners' removal before uninstall.
JOBS = ("migrate", "remove-runners")
LOCAL_VALUES = CHART / "values-local.yaml"
LOCAL_DATABASE_URL = "postgresql+psycopg2://vap:vap-local-only@127.0.0.1:15432/vap"
# What hostNetwork, probeHost, kubernetesApi and runner.hostPorts/nodeSelector add to the operator's environment.
HOST_NETWORK_VARIABLES = (
    "VAP_KUBERNETES__HOST_NETWORK",
    "VAP_KUBERNETES__HOST_PORT_FIRST",
    "VAP_KUBERNETES__HOST_PORT_LAST",
    "VAP_KUBERNETES__PROBE_HOST",
    "VAP_KUBERNETES__NODE_SELECTOR",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
)


# --- helpers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm that ./dev/infra up built (dev/lib/helm.sh knows where; VAP_HELM overrides)."""
    script = 'source dev/lib/common.sh && source dev/lib/helm.sh && printf %s "$HELM_BIN"'
    path = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    if not os.access(path, os.X_OK):
        pytest.fail(f"helm not found at {path!r}: run ./dev/infra up (it builds helm once)")
    return path


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([helm, *args], check=False, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def values_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chart") / "values.yaml"
    path.write_text(yaml.safe_dump(TEST_VALUES))
    return path


def render(helm: str, *args: str, namespace: str = "vap") -> list[dict[str, Any]]:
    output = run_helm(helm, "template", "vap", str(CHART), "--namespace", namespace, *args).stdout
    return [document for document in yaml.safe_load_all(output) if document]


@pytest.fixture(scope="module")
def rendered(helm: str, values_file: Path) -> list[dict[str, Any]]:
    return render(helm, "-f", str(values_file))


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in objects if item["kind"] == kind}


def component(item: dict[str, Any]) -> str:
    return str(item["metadata"]["labels"]["app.kubernetes.io/component"])


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pod specs of the Deployments and Jobs, by component."""
    return {
        component(item): item["spec"]["template"]["spec"] for item in objects if item["kind"] in ("Deployment", "Job")
    }


def probes(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(container/probe, probe) of every probe of a Pod spec."""
    return [
        (f"{container['name']}/{kind}", container[kind])
        for container in [*spec.get("initContainers", []), *spec["containers"]]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if kind in container
    ]


def container_environment(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    """The environment the container starts with: envFrom ConfigMaps, then env (Secret refs resolved)."""
    configmaps, secrets = by_kind(objects, "ConfigMap"), by_kind(objects, "Secret")
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment.update(configmaps[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = str(variable["value"])
            continue
        reference = variable["valueFrom"]
        if "secretKeyRef" in reference:
            environment[variable["name"]] = secrets[reference["secretKeyRef"]["name"]]["stringData"][
                reference["secretKeyRef"]["key"]
            ]
        else:
            environment[variable["name"]] = "from-the-downward-api"
    return environment


@pytest.fixture(scope="session")
def kopf_peering_crd(kubeconfig: str) -> str:
    """kopf's peering CRD from crds/, applied and Established (the chart creates a KopfPeering object)."""
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "kopf-peering.yaml"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    return "kopfpeerings.kopf.dev"


# --- lint and values ---------------------------------------------------------------------------------


def test_helm_lint_passes_strict_with_the_test_and_the_kind_values(helm: str, values_file: Path) -> None:
    for values in (values_file, CHART / "values-kind.yaml"):
        result = run_helm(helm, "lint", str(CHART), "--strict", "-f", str(values))
        assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set", "kafka.bootstrapServers=kafka:9092"], "database.url"),
        (["--set", "database.url=postgresql://vap:x@db/vap"], "kafka.bootstrapServers"),
        (["-f", "VALUES", "--set", "api.replica=3"], "additional properties"),
        (["-f", "VALUES", "--set", "api.settings.port=9000"], "VAP_"),
        (["-f", "VALUES", "--set", "images.runner.pullPolicy=Sometimes"], "pullPolicy"),
    ],
    ids=["no-database", "no-kafka", "typo-in-a-value", "setting-without-prefix", "bad-pull-policy"],
)
def test_chart_refuses_incomplete_or_mistyped_values(
    helm: str, values_file: Path, arguments: list[str], message: str
) -> None:
    arguments = [str(values_file) if argument == "VALUES" else argument for argument in arguments]
    result = run_helm(helm, "template", "vap", str(CHART), *arguments, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


# --- what the chart renders --------------------------------------------------------------------------


def test_renders_the_four_deployments_with_their_commands_and_images(rendered: list[dict[str, Any]]) -> None:
    deployments = {component(item): item for item in rendered if item["kind"] == "Deployment"}
    assert set(deployments) == set(COMPONENTS)
    for name, command in COMPONENTS.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == [command]
        image = container["image"].split(":")[0]
        assert image == ("vap-operator" if name == "operator" else "vap-api")
        package = "operator" if name == "operator" else "api"
        assert command in console_scripts(ROOT / package)
    assert deployments["operator"]["spec"]["replicas"] == 2  # kopf peering: one active, one standing by


def test_every_pod_has_probes_resources_and_a_locked_down_security_context(rendered: list[dict[str, Any]]) -> None:
    specs = pod_specs(rendered)
    assert set(specs) == {*COMPONENTS, *JOBS}
    for name, spec in specs.items():
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0, name
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["enableServiceLinks"] is False, name  # Service links would inject VAP_*_PORT variables
        mounted_tmp = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert any(
                mount["mountPath"] == "/tmp" and mount["name"] in mounted_tmp for mount in container["volumeMounts"]
            ), name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{name}/{container['name']}: {bound}"
            if name in JOBS:
                continue
            ports = {port["name"] for port in container["ports"]}
            for probe in ("livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] in ports, f"{name}: {probe} targets an undeclared port"


def test_pods_that_never_call_the_kubernetes_api_get_no_token(rendered: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(rendered).items():
        if name in ("operator", "remove-runners"):
            assert spec["serviceAccountName"] == f"vap-{name}"
        else:
            assert spec["automountServiceAccountToken"] is False, name


def test_every_vap_variable_is_a_setting_the_process_reads(
    rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = set()
    for name, spec in pod_specs(rendered).items():
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            environment = container_environment(container, rendered)
            if container["command"][0] == "vap-remove-runners":  # takes its namespace as an argument
                assert not [key for key in environment if key.startswith("VAP_")], name
                continue
            settings = SETTINGS_BY_COMMAND[container["command"][0]]
            variables = {key: value for key, value in environment.items() if key.startswith("VAP_")}
            problems = [problem for key in variables if (problem := unknown_setting(settings, key))]
            assert problems == [], f"{name}/{container['name']}: {problems}"
            # The values parse too (ports are ints, runtime and pull policy are allowed literals...).
            load_settings(settings, variables, monkeypatch)
            checked.add(name)
            if container["command"][0] in ("vap-api", "vap-relay", "vap-inbox", "vap-operator", "alembic"):
                assert environment["VAP_DATABASE__URL"] == DATABASE_URL, name
                assert environment.get("VAP_DATABASE__SCHEMA_NAME") == "vap_chart", name
    assert checked == {*COMPONENTS, "migrate"}
    extra = {
        "api": "VAP_PREDICTION_MAX_LIMIT",
        "relay": "VAP_RELAY__BATCH_SIZE",
        "inbox": "VAP_INBOX__BATCH_SIZE",
        "operator": "VAP_RESTART__CRASH_LOOP_THRESHOLD",
    }
    for name, variable in extra.items():
        (container,) = pod_specs(rendered)[name]["containers"]
        assert variable in container_environment(container, rendered), f"{name}: {name}.settings not passed on"


def test_operator_settings_point_at_the_runner_image_namespace_and_peering(
    rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (container,) = pod_specs(rendered)["operator"]["containers"]
    environment = {
        key: value for key, value in container_environment(container, rendered).items() if key.startswith("VAP_")
    }
    settings = load_settings(OperatorSettings, environment, monkeypatch)
    assert isinstance(settings, OperatorSettings)
    assert settings.runtime == "kubernetes"
    assert settings.kubernetes.namespace == "vap"
    assert settings.kubernetes.runner_image == "vap-runner:0.1.0"
    assert settings.kubernetes.peering_name in by_kind(rendered, "KopfPeering")
    assert settings.kubernetes.runner_service_account in by_kind(rendered, "ServiceAccount")
    assert (
        by_kind(rendered, "ServiceAccount")[settings.kubernetes.runner_service_account]["automountServiceAccountToken"]
        is False
    )
    assert settings.runner.max_workers == 2 and settings.runner.target_fps == 5 and settings.kubernetes.capacity == 40
    assert settings.kafka.bootstrap_servers == TEST_VALUES["kafka"]["bootstrapServers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": settings.metrics_port, "health": settings.kubernetes.liveness_port}
    assert {variable["name"] for variable in container["env"]} >= {"POD_ID"}  # kopf's peering identity


def test_services_select_their_pods_and_target_declared_ports(rendered: list[dict[str, Any]]) -> None:
    deployments = {component(item): item for item in rendered if item["kind"] == "Deployment"}
    services = {component(item): item for item in rendered if item["kind"] == "Service"}
    assert set(services) == set(COMPONENTS)
    for name, service in services.items():
        template = deployments[name]["spec"]["template"]
        assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items(), name
        assert deployments[name]["spec"]["selector"]["matchLabels"] == service["spec"]["selector"], name
        (container,) = template["spec"]["containers"]
        declared = {port["name"] for port in container["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= declared, name
    assert [port["name"] for port in services["api"]["spec"]["ports"]] == ["http"]
    assert all(
        port["name"] == "metrics" for name in ("relay", "inbox", "operator") for port in services[name]["spec"]["ports"]
    )


def test_rbac_is_the_operator_manifests_role_namespaced_without_wildcards(rendered: list[dict[str, Any]]) -> None:
    assert not by_kind(rendered, "ClusterRole") and not by_kind(rendered, "ClusterRoleBinding")
    role = by_kind(rendered, "Role")["vap-operator"]
    source = yaml.safe_load((ROOT / "operator" / "manifests" / "role.yaml").read_text())
    assert role["rules"] == source["rules"], "the chart's Role must be operator/manifests/role.yaml's rules"
    assert (CHART / "files" / "operator-role.yaml").resolve() == (
        ROOT / "operator" / "manifests" / "role.yaml"
    ).resolve()
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert not rule.get("resourceNames") or "*" not in rule["resourceNames"]
        assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"] and "impersonate" not in rule["verbs"]
    binding = by_kind(rendered, "RoleBinding")["vap-operator"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    (subject,) = binding["subjects"]
    assert subject["kind"] == "ServiceAccount" and subject["name"] in by_kind(rendered, "ServiceAccount")
    assert pod_specs(rendered)["operator"]["serviceAccountName"] == subject["name"]


def test_uninstall_first_removes_the_runners_with_a_hook_of_its_own_least_privilege(
    rendered: list[dict[str, Any]],
) -> None:
    """Runner Pods belong to VideoScenarios, which Helm does not own: a pre-delete hook deletes those (the
    operator's finalizer stops each runner) with a ServiceAccount and Role that exist only for the hook."""
    job = by_kind(rendered, "Job")["vap-remove-runners"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["vap-remove-runners", "--namespace"], container["command"]
    assert container["command"][0] in console_scripts(ROOT / "operator") and container["image"].startswith(
        "vap-operator:"
    )
    for kind in ("Job", "ServiceAccount", "Role", "RoleBinding"):
        annotations = by_kind(rendered, kind)["vap-remove-runners"]["metadata"]["annotations"]
        assert (
            annotations["helm.sh/hook"] == "pre-delete"
            and "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
        ), kind
    rules = {
        (tuple(rule["apiGroups"]), tuple(rule["resources"])): set(rule["verbs"])
        for rule in by_kind(rendered, "Role")["vap-remove-runners"]["rules"]
    }
    assert rules == {
        (("vap.dev",), ("videoscenarios",)): {"list", "delete", "patch"},
        (("",), ("pods",)): {"list", "delete"},
    }
    (subject,) = by_kind(rendered, "RoleBinding")["vap-remove-runners"]["subjects"]
    assert subject["name"] == job["spec"]["template"]["spec"]["serviceAccountName"] == "vap-remove-runners"


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook_in_the_api_image(rendered: list[dict[str, Any]]) -> None:
    job = by_kind(rendered, "Job")["vap-migrate"]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["alembic", "upgrade", "head"] and container["workingDir"] == "/app"
    assert container["image"].startswith("vap-api:")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # Hooks run before the release's own Secret exists: the URL comes from a hook Secret created first.
    secret_name = next(
        v["valueFrom"]["secretKeyRef"]["name"] for v in container["env"] if v["name"] == "VAP_DATABASE__URL"
    )
    hook_secret = by_kind(rendered, "Secret")[secret_name]
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        annotations.get("helm.sh/hook-weight", "0")
    )
    assert "hook-succeeded" in hook_secret["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    (topics,) = job["spec"]["template"]["spec"]["initContainers"]
    assert topics["name"] == "kafka-topics" and "ensure_topics" in topics["command"][-1]


def test_existing_database_secret_is_used_instead_of_a_chart_secret(helm: str) -> None:
    objects = render(
        helm,
        "--set",
        "database.existingSecret=site-db",
        "--set",
        "database.existingSecretKey=dsn",
        "--set",
        "cameraKeys.existingSecret=site-camera-keys",
        "--set",
        "kafka.bootstrapServers=k:9092",
    )
    assert not by_kind(objects, "Secret")
    for name, spec in pod_specs(objects).items():
        if name == "remove-runners":  # never connects to the database
            continue
        (reference,) = [
            v["valueFrom"]["secretKeyRef"]
            for c in spec["containers"]
            for v in c["env"]
            if v["name"] == "VAP_DATABASE__URL"
        ]
        assert reference == {"name": "site-db", "key": "dsn"}, name


def _camera_keys_references(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        name: env["valueFrom"]["secretKeyRef"]
        for name, spec in pod_specs(objects).items()
        for container in spec["containers"]
        for env in container.get("env", [])
        if env["name"] == "VAP_CAMERA_KEYS"
    }


def test_camera_keys_come_from_a_secret_only_the_api_and_the_operator_read(
    helm: str, rendered: list[dict[str, Any]]
) -> None:
    secret = by_kind(rendered, "Secret")["vap-camera-keys"]
    keyring = CameraKeyring.parse(secret["stringData"]["keys"].split(","))  # a key made at install, usable
    assert keyring.sealing_key_id is not None and keyring.open(keyring.seal("rtsp://a:b@h/s")) == "rtsp://a:b@h/s"
    assert _camera_keys_references(rendered) == {
        "api": {"name": "vap-camera-keys", "key": "keys"},
        "operator": {"name": "vap-camera-keys", "key": "keys"},
    }
    given = generate_key("site")
    objects = render(
        helm,
        "--set",
        f"cameraKeys.keys={given}",
        "--set",
        "database.url=postgresql://d/v",
        "--set",
        "kafka.bootstrapServers=k:9092",
    )
    assert by_kind(objects, "Secret")["vap-camera-keys"]["stringData"]["keys"] == given
    own = render(
        helm,
        "--set",
        "cameraKeys.existingSecret=mine",
        "--set",
        "database.url=postgresql://d/v",
        "--set",
        "kafka.bootstrapServers=k:9092",
    )
    assert "vap-camera-keys" not in by_kind(own, "Secret")
    assert list(_camera_keys_references(own).values()) == [{"name": "mine", "key": "keys"}] * 2


def test_a_bootstrap_api_key_is_registered_by_a_hook_after_the_migration(helm: str) -> None:
    args = ("--set", "database.url=postgresql://d/v", "--set", "kafka.bootstrapServers=k:9092")
    assert not [o for o in render(helm, *args) if o["metadata"]["name"] == "vap-bootstrap-key"]
    objects = render(
        helm, *args, "--set", "bootstrapApiKey.existingSecret=site-key", "--set", "bootstrapApiKey.tenant=acme"
    )
    jobs = by_kind(objects, "Job")
    job, migrate = jobs["vap-bootstrap-key"], jobs["vap-migrate"]
    weight = "helm.sh/hook-weight"
    assert int(job["metadata"]["annotations"][weight]) > int(migrate["metadata"]["annotations"][weight])
    assert job["metadata"]["annotations"]["helm.sh/hook"] == migrate["metadata"]["annotations"]["helm.sh/hook"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "vap-admin",
        "keys",
        "register",
        "--from-env=VAP_BOOTSTRAP_API_KEY",
        "--tenant=acme",
        "--name=helm bootstrapApiKey",
        "--scope=scenarios:read",
        "--scope=scenarios:write",
    ]
    env = {item["name"]: item.get("valueFrom", {}).get("secretKeyRef") for item in container["env"]}
    assert env["VAP_BOOTSTRAP_API_KEY"] == {"name": "site-key", "key": "key"}
    assert env["VAP_DATABASE__URL"] == {"name": "vap-migrate-database", "key": "url"}
    assert container["securityContext"]["runAsNonRoot"] is True


def test_oidc_settings_come_from_a_secret_of_the_users_into_the_api_only(helm: str) -> None:
    objects = render(
        helm,
        "--set",
        "oidcSecret=site-oidc",
        "--set",
        "database.url=postgresql://d/v",
        "--set",
        "kafka.bootstrapServers=k:9092",
    )
    sources = {
        name: [source for container in spec["containers"] for source in container.get("envFrom", [])]
        for name, spec in pod_specs(objects).items()
    }
    assert {"secretRef": {"name": "site-oidc"}} in sources["api"]
    assert all({"secretRef": {"name": "site-oidc"}} not in found for name, found in sources.items() if name != "api")


def test_network_policies_admit_only_each_pods_own_ports(helm: str, rendered: list[dict[str, Any]]) -> None:
    policies = by_kind(rendered, "NetworkPolicy")
    deployments = {component(item): item for item in rendered if item["kind"] == "Deployment"}
    for name, deployment in deployments.items():
        (policy,) = [p for p in policies.values() if component(p) == name]
        assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        declared = {port["containerPort"] for port in container["ports"]}
        admitted = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
        assert admitted == declared, name
    (runner,) = [p for p in policies.values() if component(p) == "runner"]
    assert runner["spec"]["podSelector"]["matchLabels"] == RUNNER_LABELS  # the labels the operator puts on runner Pods
    assert [port["port"] for rule in runner["spec"]["ingress"] for port in rule["ports"]] == [RUNNER_HTTP_PORT]
    (migrate,) = [p for p in policies.values() if component(p) == "migrate"]
    assert migrate["spec"]["ingress"] == []
    # On by default, and can be switched off.
    defaults = ["--set", "database.url=postgresql://a:b@c/d", "--set", "kafka.bootstrapServers=k:1"]
    assert set(by_kind(render(helm, *defaults), "NetworkPolicy")) == set(policies)
    assert not by_kind(render(helm, *defaults, "--set", "networkPolicy.enabled=false"), "NetworkPolicy")


def test_crds_render_with_include_crds_and_match_crds_folder(helm: str, values_file: Path) -> None:
    objects = render(helm, "-f", str(values_file), "--include-crds")
    crds = by_kind(objects, "CustomResourceDefinition")
    assert set(crds) == {"videoscenarios.vap.dev", "kopfpeerings.kopf.dev"}
    for source in ("videoscenario.yaml", "kopf-peering.yaml"):
        expected = yaml.safe_load((ROOT / "crds" / source).read_text())
        assert crds[expected["metadata"]["name"]] == expected, source


def test_helm_package_stores_the_linked_crds_and_role(helm: str, tmp_path: Path) -> None:
    run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("vap-*.tgz")
    with tarfile.open(archive) as packaged:
        files = {member.name: member for member in packaged.getmembers()}
        for inside, source in (
            ("vap/crds/videoscenario.yaml", "crds/videoscenario.yaml"),
            ("vap/files/operator-role.yaml", "operator/manifests/role.yaml"),
        ):
            assert files[inside].isfile(), f"{inside} is not a regular file in the package"
            extracted = packaged.extractfile(files[inside])
            assert extracted is not None and extracted.read().decode() == (ROOT / source).read_text()


# --- the dev stack's single node (values-local.yaml) ---------------------------------------------------


@pytest.fixture(scope="module")
def local_rendered(helm: str) -> list[dict[str, Any]]:
    return render(helm, "-f", str(LOCAL_VALUES), "--set", f"database.url={LOCAL_DATABASE_URL}")


@pytest.fixture(scope="session")
def dev_stack() -> dict[str, str]:
    """Ports and the image tag the dev stack uses (dev/lib/*.sh), which values-local.yaml must match or avoid."""
    names = ["KUBE_PORT", "KAFKA_PORT", "PG_PORT", "ETCD_PORT", "ETCD_PEER_PORT", "KAFKA_CONTROLLER_PORT", "IMAGE_TAG"]
    names += ["KUBELET_PORT", "KUBELET_HEALTHZ_PORT", "SCHEDULER_PORT", "CONTROLLER_MANAGER_PORT"]
    script = "source dev/lib/common.sh && source dev/lib/node.sh && source dev/lib/images.sh && "
    script += "printf '%s\\n' " + " ".join(f'"{name}=${name}"' for name in names)
    output = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in output.splitlines())


def test_local_values_put_every_pod_on_the_host_network_probed_at_loopback(
    helm: str, local_rendered: list[dict[str, Any]]
) -> None:
    result = run_helm(
        helm, "lint", str(CHART), "--strict", "-f", str(LOCAL_VALUES), "--set", f"database.url={LOCAL_DATABASE_URL}"
    )
    assert "0 chart(s) failed" in result.stdout, result.stdout
    specs = pod_specs(local_rendered)
    assert set(specs) == {*COMPONENTS, *JOBS}
    for name, spec in specs.items():
        assert spec["hostNetwork"] is True, name
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet", name
        found = probes(spec)
        assert len(found) == (0 if name in JOBS else 2), name
        for probe_name, probe in found:
            assert probe["httpGet"]["host"] == "127.0.0.1", f"{name}/{probe_name}"
    for item in local_rendered:
        if item["kind"] == "Deployment":
            name = component(item)
            # One per component (the Pods share the host's ports), and the old Pod goes before the new one.
            assert item["spec"]["replicas"] == 1, name
            assert item["spec"]["strategy"] == {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            }, name
    # The images built on this machine and imported into containerd: never pulled.
    for name, spec in specs.items():
        for container in spec["containers"]:
            assert container["image"].endswith(":dev") and container["imagePullPolicy"] == "Never", name


def test_local_values_move_every_port_and_each_process_listens_on_its_own(
    local_rendered: list[dict[str, Any]], dev_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = {
        "api": {"http": 28000},
        "relay": {"metrics": 28101},
        "inbox": {"metrics": 28102},
        "operator": {"metrics": 28200, "health": 28080},
    }
    specs = pod_specs(local_rendered)
    for name, ports in expected.items():
        (container,) = specs[name]["containers"]
        assert {port["name"]: port["containerPort"] for port in container["ports"]} == ports, name
        for probe_name, probe in probes(specs[name]):
            assert probe["httpGet"]["port"] in ports, f"{name}/{probe_name}"
        environment = {
            key: value
            for key, value in container_environment(container, local_rendered).items()
            if key.startswith("VAP_")
        }
        settings: Any = load_settings(SETTINGS_BY_COMMAND[container["command"][0]], environment, monkeypatch)
        if name == "api":
            listening = {"http": settings.port}
        elif name == "operator":
            listening = {"metrics": settings.metrics_port, "health": settings.kubernetes.liveness_port}
        else:
            listening = {"metrics": settings.metrics_port}
        assert listening == ports, f"{name} listens on {listening}, its Pod declares {ports}"
        if name == "api":
            assert settings.host == "0.0.0.0"
    # None of them is a port of the stack itself, or inside the runners' range.
    taken = {int(value) for key, value in dev_stack.items() if key.endswith("_PORT")}
    chart_ports = [port for ports in expected.values() for port in ports.values()]
    assert len(set(chart_ports)) == len(chart_ports) and not taken & set(chart_ports)
    assert not taken & set(range(28300, 28400))
    assert all(not 28300 <= port <= 28399 for port in chart_ports)


def test_local_values_give_the_operator_host_network_runners_and_the_api_server_address(
    local_rendered: list[dict[str, Any]], dev_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = pod_specs(local_rendered)["operator"]
    (container,) = spec["containers"]
    environment = container_environment(container, local_rendered)
    assert environment["VAP_KUBERNETES__HOST_NETWORK"] == "true"
    assert environment["VAP_KUBERNETES__PROBE_HOST"] == "127.0.0.1"
    assert (environment["VAP_KUBERNETES__HOST_PORT_FIRST"], environment["VAP_KUBERNETES__HOST_PORT_LAST"]) == (
        "28300",
        "28399",
    )
    assert "VAP_KUBERNETES__NODE_SELECTOR" not in environment  # runner.nodeSelector is {}
    # The API server's own address, as the container's env (it wins over the kubelet's injected one) ...
    explicit = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert explicit["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert explicit["KUBERNETES_SERVICE_PORT"] == dev_stack["KUBE_PORT"] == "16443"
    # ... with the operator's own ServiceAccount token (in-cluster config), no other credential.
    assert spec["serviceAccountName"] == "vap-operator" and "automountServiceAccountToken" not in spec
    assert "KUBECONFIG" not in environment
    assert all("secret" not in volume and "projected" not in volume for volume in spec["volumes"])
    # One replica without peering; the stack's Kafka; the development environment, which accepts the
    # stack's password (production refuses it).
    assert environment["VAP_KUBERNETES__PEERING_MODE"] == "standalone"
    assert environment["VAP_KAFKA__BOOTSTRAP_SERVERS"] == f"127.0.0.1:{dev_stack['KAFKA_PORT']}"
    assert environment["VAP_ENVIRONMENT"] == "local"
    assert environment["VAP_KUBERNETES__RUNNER_IMAGE"] == f"vap-runner:{dev_stack['IMAGE_TAG']}"
    assert environment["VAP_KUBERNETES__IMAGE_PULL_POLICY"] == "Never"
    requests = (environment["VAP_KUBERNETES__CPU_REQUEST"], environment["VAP_KUBERNETES__MEMORY_REQUEST"])
    assert requests == ("50m", "128Mi")
    variables = {key: value for key, value in environment.items() if key.startswith("VAP_")}
    problems = [problem for key in variables if (problem := unknown_setting(OperatorSettings, key))]
    assert problems == [], problems
    settings = load_settings(OperatorSettings, variables, monkeypatch)
    assert isinstance(settings, OperatorSettings) and settings.kubernetes.peering_mode == "standalone"
    # The topics are the stack's; the migration Job creates none.
    job = by_kind(local_rendered, "Job")["vap-migrate"]
    assert "initContainers" not in job["spec"]["template"]["spec"]


def test_local_values_fit_a_two_core_node_with_twenty_runners(local_rendered: list[dict[str, Any]]) -> None:
    def millicores(quantity: str) -> int:
        return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)

    def mebibytes(quantity: str) -> int:
        return int(quantity[:-2]) * (1024 if quantity.endswith("Gi") else 1)

    chart_cpu = chart_memory = 0
    for name, spec in pod_specs(local_rendered).items():
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            requests = container["resources"]["requests"]
            assert 10 <= millicores(requests["cpu"]) <= 50 and 64 <= mebibytes(requests["memory"]) <= 128, name
            if name not in JOBS:  # the Jobs run before the services start or after they are gone
                chart_cpu += millicores(requests["cpu"])
                chart_memory += mebibytes(requests["memory"])
    operator = container_environment(pod_specs(local_rendered)["operator"]["containers"][0], local_rendered)
    runner_cpu = millicores(operator["VAP_KUBERNETES__CPU_REQUEST"])
    assert chart_cpu + 20 * runner_cpu <= 1800, "the chart's Pods and 20 runners must fit 2 cores"
    assert chart_memory + 20 * mebibytes(operator["VAP_KUBERNETES__MEMORY_REQUEST"]) <= 4096
    assert (operator["VAP_KUBERNETES__CPU_LIMIT"], operator["VAP_KUBERNETES__MEMORY_LIMIT"]) == ("1", "1Gi")


def test_runner_node_selector_is_passed_to_the_operator_as_json(helm: str) -> None:
    selector = {"kubernetes.io/hostname": "localhost", "vap.dev/runners": "yes"}
    objects = render(
        helm,
        "--set",
        "database.url=postgresql://a:b@c/d",
        "--set",
        "kafka.bootstrapServers=k:1",
        "--set-json",
        f"runner.nodeSelector={json.dumps(selector)}",
    )
    (container,) = pod_specs(objects)["operator"]["containers"]
    environment = container_environment(container, objects)
    assert json.loads(environment["VAP_KUBERNETES__NODE_SELECTOR"]) == selector
    # Without hostNetwork the runners get no host ports.
    assert "VAP_KUBERNETES__HOST_NETWORK" not in environment and "VAP_KUBERNETES__HOST_PORT_FIRST" not in environment


def test_default_values_render_none_of_the_host_network_settings(helm: str, rendered: list[dict[str, Any]]) -> None:
    minimal = render(helm, "--set", "database.url=postgresql://a:b@c/d", "--set", "kafka.bootstrapServers=k:1")
    for objects in (minimal, rendered):
        specs = pod_specs(objects)
        assert set(specs) == {*COMPONENTS, *JOBS}
        for name, spec in specs.items():
            assert "hostNetwork" not in spec and "dnsPolicy" not in spec, name
            for probe_name, probe in probes(spec):
                assert "host" not in probe["httpGet"], f"{name}/{probe_name}"
        for item in objects:
            if item["kind"] == "Deployment":
                assert "strategy" not in item["spec"], component(item)
                assert item["spec"]["replicas"] == 2, component(item)
        (container,) = specs["operator"]["containers"]
        environment = container_environment(container, objects)
        assert not set(HOST_NETWORK_VARIABLES) & set(environment), set(HOST_NETWORK_VARIABLES) & set(environment)
        assert environment["VAP_KUBERNETES__PEERING_MODE"] == "mandatory"
        assert environment["VAP_ENVIRONMENT"] == "production"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set", "operator.replicas=2"], "maximum"),
        (["--set", "relay.metricsPort=28000"], "are both port 28000"),
        (["--set", "operator.healthPort=28350"], "inside runner.hostPorts"),
        (["--set", "runner.hostPorts.first=28400"], "first must not be above last"),
        (["--set", "kubernetesApi.port=https"], "kubernetesApi"),
    ],
    ids=[
        "standalone-with-two-replicas",
        "two-components-on-one-port",
        "port-in-the-runner-range",
        "empty-range",
        "bad-api-port",
    ],
)
def test_local_values_refuse_ports_that_clash_on_the_node(helm: str, arguments: list[str], message: str) -> None:
    result = run_helm(
        helm,
        "template",
        "vap",
        str(CHART),
        "-f",
        str(LOCAL_VALUES),
        "--set",
        f"database.url={LOCAL_DATABASE_URL}",
        *arguments,
        check=False,
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr


# --- the real API server -------------------------------------------------------------------------------


def test_everything_rendered_passes_a_server_side_dry_run(
    helm: str, values_file: Path, kubeconfig: str, kube_namespace: str, videoscenario_crd: str, kopf_peering_crd: str
) -> None:
    manifests = run_helm(
        helm, "template", "vap", str(CHART), "--namespace", kube_namespace, "-f", str(values_file)
    ).stdout
    result = kubectl(
        kubeconfig, "-n", kube_namespace, "apply", "--dry-run=server", "-f", "-", stdin=manifests, check=False
    )
    assert result.returncode == 0, result.stderr
    accepted = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    expected = [document for document in yaml.safe_load_all(manifests) if document]
    assert len(accepted) == len(expected), result.stdout


def test_local_values_pass_a_server_side_dry_run(
    helm: str, kubeconfig: str, kube_namespace: str, videoscenario_crd: str, kopf_peering_crd: str
) -> None:
    manifests = run_helm(
        helm,
        "template",
        "vap",
        str(CHART),
        "--namespace",
        kube_namespace,
        "-f",
        str(LOCAL_VALUES),
        "--set",
        f"database.url={LOCAL_DATABASE_URL}",
    ).stdout
    result = kubectl(
        kubeconfig,
        "-n",
        kube_namespace,
        "apply",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        stdin=manifests,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    accepted = json.loads(result.stdout)
    items = accepted["items"] if accepted["kind"] == "List" else [accepted]
    expected = [document for document in yaml.safe_load_all(manifests) if document]
    assert len(items) == len(expected)
    for item in items:
        if item["kind"] in ("Deployment", "Job"):
            spec = item["spec"]["template"]["spec"]
            name = item["metadata"]["name"]
            assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet", name


@pytest.fixture
def release(
    helm: str, values_file: Path, kubeconfig: str, kube_namespace: str, videoscenario_crd: str, kopf_peering_crd: str
) -> Iterator[str]:
    """`helm install` into the test's namespace. --skip-crds: the session fixtures applied them (they are
    cluster-wide, shared by every test). --no-hooks (install and uninstall): the hook Jobs would need a
    database and a Pod on the node to complete, and helm waits for them; they are validated by the dry
    run above, and run for real on the node by tests/e2e/test_e2e_node.py."""
    run_helm(
        helm,
        "install",
        "vap",
        str(CHART),
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        kube_namespace,
        "--skip-crds",
        "--no-hooks",
        "-f",
        str(values_file),
    )
    try:
        yield "vap"
    finally:
        run_helm(
            helm,
            "uninstall",
            "vap",
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            kube_namespace,
            "--no-hooks",
            check=False,
        )


def _names(kubeconfig: str, namespace: str, kind: str) -> set[str]:
    listed = json.loads(kubectl(kubeconfig, "-n", namespace, "get", kind, "-o", "json").stdout)
    return {item["metadata"]["name"] for item in listed["items"]}


def test_helm_install_creates_the_expected_objects(
    helm: str, release: str, kubeconfig: str, kube_namespace: str
) -> None:
    status = json.loads(
        run_helm(
            helm, "status", release, "--kubeconfig", kubeconfig, "--namespace", kube_namespace, "-o", "json"
        ).stdout
    )
    assert status["info"]["status"] == "deployed"
    expected = {
        "deployments.apps": {"vap-api", "vap-relay", "vap-inbox", "vap-operator"},
        "services": {"vap-api", "vap-relay", "vap-inbox", "vap-operator"},
        "configmaps": {"vap-common", "vap-api", "vap-relay", "vap-inbox", "vap-operator"},
        "secrets": {"vap-database", "vap-camera-keys"},
        "serviceaccounts": {"vap-operator", "vap-runner"},
        "roles.rbac.authorization.k8s.io": {"vap-operator"},
        "rolebindings.rbac.authorization.k8s.io": {"vap-operator"},
        "networkpolicies.networking.k8s.io": {
            "vap-api",
            "vap-relay",
            "vap-inbox",
            "vap-operator",
            "vap-migrate",
            "vap-runner",
        },
        "kopfpeerings.kopf.dev": {"vap-operator"},
    }
    for kind, names in expected.items():
        assert names <= _names(kubeconfig, kube_namespace, kind), kind
    for name in expected["deployments.apps"]:
        listed = kubectl(kubeconfig, "-n", kube_namespace, "get", "deployment", name, "-o", "json")
        deployment = json.loads(listed.stdout)
        assert deployment["spec"]["template"]["spec"]["nodeSelector"] == OFF_THE_NODE, name  # kept off the node
    # The hooks were skipped, and the hook Secret is not a release object.
    assert not _names(kubeconfig, kube_namespace, "jobs.batch")
    assert "vap-migrate-database" not in _names(kubeconfig, kube_namespace, "secrets")
    # The CRD's resource answers in the namespace (empty: no scenario registered).
    assert kubectl(kubeconfig, "-n", kube_namespace, "get", "videoscenarios", "-o", "name").stdout.strip() == ""


def test_installed_operator_account_has_exactly_its_role(release: str, kubeconfig: str, kube_namespace: str) -> None:
    account = f"system:serviceaccount:{kube_namespace}:vap-operator"

    def can(*query: str, namespace: str = kube_namespace) -> bool:
        result = kubectl(kubeconfig, "-n", namespace, "auth", "can-i", *query, f"--as={account}", check=False)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.stdout.strip() == "yes"

    assert can("create", "videoscenarios.vap.dev") and can("patch", "videoscenarios.vap.dev", "--subresource=status")
    assert can("create", "pods") and can("watch", "pods") and can("patch", "kopfpeerings.kopf.dev")
    assert not can("delete", "videoscenarios.vap.dev")
    assert not can("list", "secrets")
    assert not can("create", "deployments.apps")
    assert not can("create", "pods", namespace="default")
    assert not can("list", "nodes")


def test_helm_upgrade_applies_new_values(
    helm: str, release: str, values_file: Path, kubeconfig: str, kube_namespace: str
) -> None:
    before = json.loads(
        kubectl(kubeconfig, "-n", kube_namespace, "get", "deployment", "vap-relay", "-o", "json").stdout
    )
    keys_before = kubectl(kubeconfig, "-n", kube_namespace, "get", "secret", "vap-camera-keys", "-o", "json").stdout
    run_helm(
        helm,
        "upgrade",
        release,
        str(CHART),
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        kube_namespace,
        "--skip-crds",
        "--no-hooks",
        "-f",
        str(values_file),
        "--set",
        "api.replicas=3",
        "--set",
        "relay.settings.VAP_RELAY__BATCH_SIZE=50",
    )
    api = json.loads(kubectl(kubeconfig, "-n", kube_namespace, "get", "deployment", "vap-api", "-o", "json").stdout)
    assert api["spec"]["replicas"] == 3
    relay_config = json.loads(
        kubectl(kubeconfig, "-n", kube_namespace, "get", "configmap", "vap-relay", "-o", "json").stdout
    )
    assert relay_config["data"]["VAP_RELAY__BATCH_SIZE"] == "50"
    # The camera key made at install is kept: what it sealed must still open.
    keys_after = kubectl(kubeconfig, "-n", kube_namespace, "get", "secret", "vap-camera-keys", "-o", "json").stdout
    assert json.loads(keys_after)["data"] == json.loads(keys_before)["data"]
    after = json.loads(kubectl(kubeconfig, "-n", kube_namespace, "get", "deployment", "vap-relay", "-o", "json").stdout)
    # A changed ConfigMap rolls the Pods (their environment is read once, at start).
    checksum = "checksum/config"
    assert (
        before["spec"]["template"]["metadata"]["annotations"][checksum]
        != after["spec"]["template"]["metadata"]["annotations"][checksum]
    )


def test_every_pod_the_platform_makes_passes_pod_security_restricted(
    rendered: list[dict[str, Any]], kubeconfig: str, kube_namespace: str
) -> None:
    """The API server's PodSecurity admission judges each Pod of the chart (Deployments and hook Jobs)
    and a runner Pod as the operator makes it, in a namespace that enforces the `restricted` level."""
    kubectl(kubeconfig, "label", "namespace", kube_namespace, "pod-security.kubernetes.io/enforce=restricted")
    command = DeployCommand(scenario_uuid=uuid.uuid4(), worker_id="w-1", action="deploy", camera_url="rtsp://c/s")
    videoscenario = manifests.videoscenario(command, max_workers=1, desired=DesiredState.ACTIVE)
    videoscenario["metadata"]["uid"] = str(uuid.uuid4())
    runner = manifests.runner_pod(
        videoscenario,
        kubernetes=KubernetesSettings(),
        runner=RunnerLaunchSettings(),
        kafka=KafkaSettings(),
        camera_policy=AddressPolicy(),
    )
    specs = {**pod_specs(rendered), "runner": runner["spec"]}
    # Without their ServiceAccounts, which are not installed here: those are not what is judged.
    pods = {
        name: {"metadata": {"name": f"pss-{name}"}, "spec": {**spec, "serviceAccountName": "default"}}
        for name, spec in specs.items()
    }
    assert {"api", "relay", "inbox", "operator", "migrate", "runner"} <= set(pods)
    for name, pod in pods.items():
        created = _create_pod_dry_run(kubeconfig, kube_namespace, pod)
        assert created.returncode == 0, f"{name}: {created.stderr}"
    # The check is on: a Pod that asks for privileges is refused.
    privileged = json.loads(json.dumps(pods["api"]))
    privileged["metadata"]["name"] = "pss-privileged"
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    refused = _create_pod_dry_run(kubeconfig, kube_namespace, privileged)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr


def _create_pod_dry_run(kubeconfig: str, namespace: str, pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    body = json.dumps({"apiVersion": "v1", "kind": "Pod", **pod})
    return kubectl(kubeconfig, "-n", namespace, "create", "--dry-run=server", "-f", "-", stdin=body, check=False)
