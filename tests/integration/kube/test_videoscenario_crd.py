"""Kubernetes smoke test: the VideoScenario CRD on the real API server, read back with kubectl."""

from __future__ import annotations

import json
import uuid

from tests.conftest import kubectl


def _videoscenario(name: str, scenario_uuid: str, **spec: object) -> str:
    body = {
        "apiVersion": "vap.dev/v1alpha1",
        "kind": "VideoScenario",
        "metadata": {"name": name},
        "spec": {
            "scenarioUUID": scenario_uuid,
            "workerId": f"w-{scenario_uuid[:8]}",
            "cameraURL": "rtsp://cam.example/stream",
            "desiredState": "active",
            **spec,
        },
    }
    return json.dumps(body)


def test_create_videoscenario_and_get_it_with_printer_columns(
    kubeconfig: str, videoscenario_crd: str, kube_namespace: str
) -> None:
    scenario_uuid = str(uuid.uuid4())
    kubectl(kubeconfig, "-n", kube_namespace, "create", "-f", "-", stdin=_videoscenario("vs-smoke", scenario_uuid))

    table = kubectl(kubeconfig, "-n", kube_namespace, "get", "videoscenarios").stdout.splitlines()
    assert table[0].split() == ["NAME", "UUID", "TENANT", "PHASE", "POD", "RESTARTS", "AGE"]
    assert table[1].split()[:2] == ["vs-smoke", scenario_uuid]

    stored = json.loads(kubectl(kubeconfig, "-n", kube_namespace, "get", "vsc", "vs-smoke", "-o", "json").stdout)
    assert stored["spec"]["maxWorkers"] == 1  # schema default applied by the API server


def test_api_server_rejects_malformed_videoscenario(
    kubeconfig: str, videoscenario_crd: str, kube_namespace: str
) -> None:
    bad = _videoscenario("vs-bad", "not-a-uuid", desiredState="paused")
    result = kubectl(kubeconfig, "-n", kube_namespace, "create", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    assert "spec.scenarioUUID" in result.stderr and "spec.desiredState" in result.stderr


def test_api_server_requires_exactly_one_camera_source(
    kubeconfig: str, videoscenario_crd: str, kube_namespace: str
) -> None:
    both = _videoscenario("vs-both", str(uuid.uuid4()), cameraSecretRef={"name": "cam", "key": "url"})
    result = kubectl(kubeconfig, "-n", kube_namespace, "create", "-f", "-", stdin=both, check=False)
    assert result.returncode != 0
    assert "exactly one of cameraURL or cameraSecretRef" in result.stderr


def test_api_server_refuses_to_reactivate_a_stopped_scenario(
    kubeconfig: str, videoscenario_crd: str, kube_namespace: str
) -> None:
    kubectl(
        kubeconfig,
        "-n",
        kube_namespace,
        "create",
        "-f",
        "-",
        stdin=_videoscenario("vs-stopped", str(uuid.uuid4()), desiredState="inactive"),
    )
    result = kubectl(
        kubeconfig,
        "-n",
        kube_namespace,
        "patch",
        "vsc",
        "vs-stopped",
        "--type=merge",
        "-p",
        '{"spec": {"desiredState": "active"}}',
        check=False,
    )
    assert result.returncode != 0 and "a stopped scenario cannot be re-activated" in result.stderr


def test_status_keeps_only_the_declared_fields(kubeconfig: str, videoscenario_crd: str, kube_namespace: str) -> None:
    kubectl(kubeconfig, "-n", kube_namespace, "create", "-f", "-", stdin=_videoscenario("vs-status", str(uuid.uuid4())))
    status = {
        "status": {
            "phase": "active",
            "restarts": 1,
            "crashes": [{"podUID": "u", "at": "2026-11-25T12:00:00.5Z", "exitCode": None}],
            "kopf": {"progress": {}},
        }
    }
    kubectl(
        kubeconfig,
        "-n",
        kube_namespace,
        "patch",
        "vsc",
        "vs-status",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    stored = json.loads(kubectl(kubeconfig, "-n", kube_namespace, "get", "vsc", "vs-status", "-o", "json").stdout)[
        "status"
    ]
    assert stored["phase"] == "active" and stored["crashes"][0]["podUID"] == "u"
    assert "kopf" not in stored  # pruned: status holds only our fields
    bad = kubectl(
        kubeconfig,
        "-n",
        kube_namespace,
        "patch",
        "vsc",
        "vs-status",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "paused"}}',
        check=False,
    )
    assert bad.returncode != 0 and "status.phase" in bad.stderr
