"""Kubernetes objects built from messages and settings: VideoScenario, camera Secret, runner Pod.

Pure functions (no API calls), so the exact spec is unit-tested and the integration tests only check
that the API server accepts and stores it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from vap_common.address_policy import AddressPolicy
from vap_common.contracts import DeployCommand, DetectorSpec
from vap_common.redact import has_credentials
from vap_common.runner_contract import RUNNER_HTTP_PORT, RunnerSpec, runner_environment
from vap_common.settings import KafkaSettings
from vap_operator.decisions import DesiredState, camera_secret_name_for, pod_name_for, resource_name_for
from vap_operator.kube.crd import API_VERSION, KIND
from vap_operator.settings import KubernetesSettings, RunnerLaunchSettings

Body = dict[str, Any]

MANAGED_BY = "vap-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_SCENARIO = "vap.dev/scenario-uuid"
LABEL_TENANT = "vap.dev/tenant"
RUNNER_LABELS = {LABEL_NAME: "vap-runner", LABEL_MANAGED_BY: MANAGED_BY}
# Selects every runner Pod of the namespace (capacity count, leases).
RUNNER_SELECTOR = ",".join(f"{key}={value}" for key, value in RUNNER_LABELS.items())
CAMERA_SECRET_KEY = "url"
RUNNER_CONTAINER = "runner"
# The runner container's port the probes use, by name: on the node's network each runner has its own number.
HTTP_PORT_NAME = "http"


def labels_for(command: DeployCommand) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_INSTANCE: resource_name_for(command.scenario_uuid),
        LABEL_SCENARIO: str(command.scenario_uuid),
        LABEL_TENANT: command.tenant,
    }


def needs_secret(command: DeployCommand) -> bool:
    """Camera URLs with a password or token never go into a spec, an Event or a log: a Secret holds them."""
    return has_credentials(command.camera_url)


def camera_secret(command: DeployCommand) -> Body:
    name = camera_secret_name_for(resource_name_for(command.scenario_uuid))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels_for(command)},
        "type": "Opaque",
        "stringData": {CAMERA_SECRET_KEY: command.camera_url},
    }


def videoscenario(command: DeployCommand, *, max_workers: int, desired: DesiredState) -> Body:
    """The VideoScenario of a to_deploy message (credentials, if any, referenced from a Secret)."""
    name = resource_name_for(command.scenario_uuid)
    camera: Body = (
        {"cameraSecretRef": {"name": camera_secret_name_for(name), "key": CAMERA_SECRET_KEY}}
        if needs_secret(command)
        else {"cameraURL": command.camera_url}
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "labels": labels_for(command)},
        "spec": {
            "scenarioUUID": str(command.scenario_uuid),
            "workerId": command.worker_id,
            **camera,
            "detector": {"name": command.detector.name, "settings": dict(command.detector.settings)},
            "maxWorkers": max_workers,
            **({"analysisFPS": command.analysis_fps} if command.analysis_fps is not None else {}),
            "desiredState": desired.value,
        },
    }


def owner_reference(owner: Mapping[str, Any]) -> Body:
    """An ownerReference to a VideoScenario (controller: the one object that manages the child)."""
    metadata = owner["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
    }


def runner_pod(
    videoscenario: Mapping[str, Any],
    *,
    kubernetes: KubernetesSettings,
    runner: RunnerLaunchSettings,
    kafka: KafkaSettings,
    camera_policy: AddressPolicy,
    http_port: int = RUNNER_HTTP_PORT,
) -> Body:
    """The one runner Pod of a VideoScenario, its HTTP endpoint on ``http_port`` (a free host port on
    the node's network).

    restartPolicy Never: the operator owns restarts (backoff, crash-loop detection, `failed`), which a
    kubelet restart loop would hide from it.
    """
    spec = videoscenario["spec"]
    name = videoscenario["metadata"]["name"]
    secret_ref = spec.get("cameraSecretRef")
    runner_spec = RunnerSpec(
        scenario_uuid=UUID(spec["scenarioUUID"]),
        worker_id=spec["workerId"],
        camera_url=None if secret_ref is not None else spec.get("cameraURL", ""),
        detector=DetectorSpec.model_validate(spec.get("detector") or {}),
        max_workers=int(spec.get("maxWorkers", runner.max_workers)),
        grace_seconds=runner.stop_grace_seconds,
        target_fps=runner.target_fps_for(spec.get("analysisFPS")),
    )
    environment = runner_environment(
        runner_spec, kafka=kafka, camera_policy=camera_policy, http_port=http_port, extra=runner.environment
    )
    env: list[Body] = [{"name": key, "value": value} for key, value in environment.items()]
    if secret_ref is not None:
        env.append(
            {
                "name": "VAP_CAMERA_URL",
                "valueFrom": {"secretKeyRef": {"name": secret_ref["name"], "key": secret_ref["key"]}},
            }
        )
    labels = {**RUNNER_LABELS, LABEL_INSTANCE: name, LABEL_SCENARIO: spec["scenarioUUID"]}
    if tenant := (videoscenario["metadata"].get("labels") or {}).get(LABEL_TENANT):
        labels[LABEL_TENANT] = tenant
    pod_spec: Body = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": math.ceil(runner.stop_grace_seconds),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": kubernetes.run_as_user,
            "runAsGroup": kubernetes.run_as_user,
            "fsGroup": kubernetes.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": RUNNER_CONTAINER,
                "image": kubernetes.runner_image,
                "imagePullPolicy": kubernetes.image_pull_policy,
                "env": env,
                "ports": [{"name": HTTP_PORT_NAME, "containerPort": http_port, "protocol": "TCP"}],
                "resources": {
                    "requests": {"cpu": kubernetes.cpu_request, "memory": kubernetes.memory_request},
                    "limits": {"cpu": kubernetes.cpu_limit, "memory": kubernetes.memory_limit},
                },
                "livenessProbe": {
                    "httpGet": _probe_request("/healthz", kubernetes.probe_host),
                    "initialDelaySeconds": kubernetes.liveness_initial_delay_seconds,
                    "periodSeconds": kubernetes.liveness_period_seconds,
                    "failureThreshold": kubernetes.liveness_failure_threshold,
                },
                "readinessProbe": {
                    "httpGet": _probe_request("/readyz", kubernetes.probe_host),
                    "periodSeconds": kubernetes.readiness_period_seconds,
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}],
            }
        ],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": f"{kubernetes.tmp_size_mib}Mi"}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{kubernetes.shm_size_mib}Mi"}},
        ],
    }
    if kubernetes.runner_service_account:
        pod_spec["serviceAccountName"] = kubernetes.runner_service_account
    if kubernetes.host_network:
        pod_spec.update(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    if kubernetes.node_selector:
        pod_spec["nodeSelector"] = dict(kubernetes.node_selector)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name_for(name), "labels": labels, "ownerReferences": [owner_reference(videoscenario)]},
        "spec": pod_spec,
    }


def _probe_request(path: str, host: str | None) -> Body:
    """A probe's GET to the runner's port (``host`` None: the Pod's IP, the kubelet's default)."""
    request: Body = {"path": path, "port": HTTP_PORT_NAME}
    if host:
        request["host"] = host
    return request
