"""The local stack's real node (dev/lib/node.sh): containerd + runc run the Pods' containers from the
images built on this machine, and kube-scheduler / kube-controller-manager make the workload objects
work. Only hostNetwork Pods can run here (no pod network), so every Pod below uses the host's network
and probes loopback."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client, config

from tests.conftest import create_namespace, free_port, kubectl
from tests.helpers import wait_until

NODE = "localhost"
IMAGE = "docker.io/library/vap-operator:dev"  # built by ./dev/infra up; has Python and the kubernetes client
API_HOST, API_PORT = "127.0.0.1", "16443"  # the API server from a hostNetwork Pod (there is no kube-proxy)


@pytest.fixture
def core(kubeconfig: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))


def _apply(kubeconfig: str, namespace: str, *objects: dict[str, Any]) -> None:
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def _get(kubeconfig: str, namespace: str, *what: str) -> dict[str, Any]:
    return dict(json.loads(kubectl(kubeconfig, "-n", namespace, "get", *what, "-o", "json").stdout))


def _pod_spec(command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": command, **extra}],
    }


def test_the_node_is_ready_and_runs_only_the_images_built_here(kubeconfig: str) -> None:
    node = json.loads(kubectl(kubeconfig, "get", "node", NODE, "-o", "json").stdout)
    ready = {condition["type"]: condition["status"] for condition in node["status"]["conditions"]}
    assert ready["Ready"] == "True", node["status"]["conditions"]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert (
        node["status"]["nodeInfo"]["kubeletVersion"]
        == json.loads(kubectl(kubeconfig, "version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    )

    def images() -> set[str]:  # reported by the kubelet a few seconds after it starts
        status = json.loads(kubectl(kubeconfig, "get", "node", NODE, "-o", "json").stdout)["status"]
        return {name for image in status.get("images") or [] for name in image.get("names") or []}

    wanted = {f"docker.io/library/{name}:dev" for name in ("vap-api", "vap-operator", "vap-runner")}
    wait_until(
        lambda: wanted <= images(), timeout_seconds=60, interval_seconds=1, what=f"images {sorted(wanted)} on the node"
    )


def test_a_deployment_becomes_available_with_its_probe_and_is_garbage_collected(
    kubeconfig: str, kube_namespace: str, core: client.CoreV1Api
) -> None:
    port = free_port()
    server = ["python", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", "/app"]
    probe = {"httpGet": {"host": "127.0.0.1", "port": port, "path": "/"}, "periodSeconds": 1}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": _pod_spec(server, readinessProbe=probe)},
        },
    }
    _apply(kubeconfig, kube_namespace, deployment)
    kubectl(kubeconfig, "-n", kube_namespace, "rollout", "status", "deployment/web", "--timeout=90s")
    [pod] = core.list_namespaced_pod(kube_namespace, label_selector="app=web").items
    assert pod.spec.node_name == NODE and pod.status.phase == "Running"
    # The container really runs: its own log, through the API server and the kubelet.
    wait_until(
        lambda: "Serving HTTP" in kubectl(kubeconfig, "-n", kube_namespace, "logs", pod.metadata.name).stdout,
        timeout_seconds=20,
        what="the container's log",
    )

    # Deleting the Deployment: the garbage collector removes its ReplicaSet and Pod, the kubelet the container.
    kubectl(kubeconfig, "-n", kube_namespace, "delete", "deployment", "web", "--cascade=background")
    wait_until(
        lambda: not core.list_namespaced_pod(kube_namespace, label_selector="app=web").items,
        timeout_seconds=60,
        what="the Pod garbage-collected",
    )
    assert not _get(kubeconfig, kube_namespace, "replicasets")["items"]


def test_a_job_completes_and_its_serviceaccount_token_reaches_the_api_with_only_its_role(
    kubeconfig: str, kube_namespace: str
) -> None:
    """In-cluster config from the token the kubelet mounts: allowed to list Pods by its Role, refused Secrets."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": kube_namespace}],
    }
    script = (
        "from kubernetes import client, config\n"
        "config.load_incluster_config()\n"
        "api = client.CoreV1Api()\n"
        f"print('pods', len(api.list_namespaced_pod('{kube_namespace}').items))\n"
        "try:\n"
        f"    api.list_namespaced_secret('{kube_namespace}')\n"
        "except client.ApiException as error:\n"
        "    print('secrets', error.status)\n"
    )
    environment = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": API_HOST},
        {"name": "KUBERNETES_SERVICE_PORT", "value": API_PORT},
    ]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "reader"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    **_pod_spec(["python", "-c", script], env=environment),
                    "restartPolicy": "Never",
                    "serviceAccountName": "reader",
                }
            },
        },
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}
    _apply(kubeconfig, kube_namespace, account, role, binding, job)
    kubectl(kubeconfig, "-n", kube_namespace, "wait", "--for=condition=Complete", "job/reader", "--timeout=90s")
    output = kubectl(kubeconfig, "-n", kube_namespace, "logs", "job/reader").stdout.split("\n")
    assert "pods 1" in output and "secrets 403" in output, output


def test_a_deleted_namespace_is_really_gone_with_its_running_pods(kubeconfig: str, core: client.CoreV1Api) -> None:
    namespace = create_namespace(kubeconfig, f"t-node-{uuid.uuid4().hex[:8]}")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sleeper"},
        "spec": {**_pod_spec(["sleep", "3600"]), "terminationGracePeriodSeconds": 1},
    }
    _apply(kubeconfig, namespace, pod)
    wait_until(
        lambda: core.read_namespaced_pod("sleeper", namespace).status.phase == "Running",
        timeout_seconds=60,
        what="the Pod Running",
    )

    kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false")
    gone = lambda: kubectl(kubeconfig, "get", "namespace", namespace, check=False).returncode != 0
    wait_until(gone, timeout_seconds=90, what=f"namespace {namespace} deleted")


def test_the_runner_image_carries_no_compiler_and_no_build_cache(
    kubeconfig: str, kube_namespace: str, core: client.CoreV1Api
) -> None:
    script = (
        "import glob, shutil\n"
        "print('compilers', [name for name in ('gcc', 'cc', 'c++', 'g++', 'make') if shutil.which(name)])\n"
        "print('caches', glob.glob('/root/.cache/*') + glob.glob('/tmp/pip-*') "
        "+ glob.glob('/app/**/build', recursive=True) + glob.glob('/app/**/*.egg-info', recursive=True))\n"
    )
    spec = {**_pod_spec(["python", "-c", script]), "restartPolicy": "Never"}
    spec["containers"][0]["image"] = "docker.io/library/vap-runner:dev"
    spec["containers"][0]["securityContext"] = {"runAsUser": 0}  # root may read every folder, /root's too
    _apply(
        kubeconfig, kube_namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "inspect"}, "spec": spec}
    )
    wait_until(
        lambda: core.read_namespaced_pod("inspect", kube_namespace).status.phase == "Succeeded",
        timeout_seconds=60,
        what="the inspection Pod done",
    )
    output = kubectl(kubeconfig, "-n", kube_namespace, "logs", "inspect").stdout.splitlines()
    assert output == ["compilers []", "caches []"], output
