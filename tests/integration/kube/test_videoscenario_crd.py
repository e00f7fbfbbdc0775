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
        "spec": {"scenarioUUID": scenario_uuid, "workerId": f"w-{scenario_uuid[:8]}", "cameraURL": "rtsp://cam.example/stream", "desiredState": "active", **spec},
    }
    return json.dumps(body)


def test_create_videoscenario_and_get_it_with_printer_columns(kubeconfig: str, videoscenario_crd: str, kube_namespace: str) -> None:
    scenario_uuid = str(uuid.uuid4())
    kubectl(kubeconfig, "-n", kube_namespace, "create", "-f", "-", stdin=_videoscenario("vs-smoke", scenario_uuid))

    table = kubectl(kubeconfig, "-n", kube_namespace, "get", "videoscenarios").stdout.splitlines()
    assert table[0].split() == ["NAME", "UUID", "PHASE", "POD", "RESTARTS", "AGE"]
    assert table[1].split()[:2] == ["vs-smoke", scenario_uuid]

    stored = json.loads(kubectl(kubeconfig, "-n", kube_namespace, "get", "vsc", "vs-smoke", "-o", "json").stdout)
    assert stored["spec"]["maxWorkers"] == 1  # schema default applied by the API server


def test_api_server_rejects_malformed_videoscenario(kubeconfig: str, videoscenario_crd: str, kube_namespace: str) -> None:
    bad = _videoscenario("vs-bad", "not-a-uuid", desiredState="paused")
    result = kubectl(kubeconfig, "-n", kube_namespace, "create", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    assert "spec.scenarioUUID" in result.stderr and "spec.desiredState" in result.stderr


def test_api_server_requires_exactly_one_camera_source(kubeconfig: str, videoscenario_crd: str, kube_namespace: str) -> None:
    both = _videoscenario("vs-both", str(uuid.uuid4()), cameraSecretRef={"name": "cam", "key": "url"})
    result = kubectl(kubeconfig, "-n", kube_namespace, "create", "-f", "-", stdin=both, check=False)
    assert result.returncode != 0
    assert "exactly one of cameraURL or cameraSecretRef" in result.stderr
