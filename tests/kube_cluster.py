"""The test's view of one namespace of the real kube-apiserver (admin credentials): VideoScenarios,
runner Pods and Secrets, read as plain dicts (None when absent), and the kubelet's Pod status writes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.helpers import pod_status_patch, wait_until
from vap_operator.kube.crd import GROUP, PLURAL, VERSION


def _absent_is_none(read: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
    try:
        response = read(*args, _preload_content=False)
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(json.loads(response.data))


class Cluster:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def vs(self, scenario_uuid: uuid.UUID) -> dict[str, Any] | None:
        return _absent_is_none(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, f"vs-{scenario_uuid}"
        )

    def all_vs(self) -> list[dict[str, Any]]:
        return list(self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"])

    def pod(self, scenario_uuid: uuid.UUID) -> dict[str, Any] | None:
        return self.pod_named(f"vs-{scenario_uuid}-runner")

    def pod_named(self, name: str) -> dict[str, Any] | None:
        return _absent_is_none(self.core.read_namespaced_pod, name, self.namespace)

    def pods(self) -> list[dict[str, Any]]:
        response = self.core.list_namespaced_pod(self.namespace, _preload_content=False)
        return list(json.loads(response.data)["items"])

    def secret(self, name: str) -> dict[str, Any] | None:
        return _absent_is_none(self.core.read_namespaced_secret, name, self.namespace)

    def phase(self, scenario_uuid: uuid.UUID) -> str | None:
        body = self.vs(scenario_uuid)
        return (body or {}).get("status", {}).get("phase")

    def set_pod(self, scenario_uuid: uuid.UUID, phase: str, **kwargs: Any) -> None:
        """Write the Pod status as a kubelet would (see tests.helpers.pod_status_patch)."""
        self.set_pod_named(f"vs-{scenario_uuid}-runner", phase, **kwargs)

    def set_pod_named(self, name: str, phase: str, **kwargs: Any) -> None:
        self.core.patch_namespaced_pod_status(name, self.namespace, pod_status_patch(phase, **kwargs))

    def event_reasons(self, scenario_uuid: uuid.UUID) -> list[str]:
        events = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name=vs-{scenario_uuid}"
        ).items
        return [event.reason for event in sorted(events, key=lambda e: e.metadata.creation_timestamp)]

    def wait_pod(
        self, scenario_uuid: uuid.UUID, *, other_than: str | None = None, timeout_seconds: float = 30.0
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            pod = self.pod(scenario_uuid)
            return pod if pod is not None and pod["metadata"]["uid"] != other_than else None

        return wait_until(found, timeout_seconds=timeout_seconds, what=f"runner Pod of {scenario_uuid}")

    def wait_phase(self, scenario_uuid: uuid.UUID, phase: str, timeout_seconds: float = 30.0) -> dict[str, Any]:
        wait_until(
            lambda: self.phase(scenario_uuid) == phase,
            timeout_seconds=timeout_seconds,
            what=f"phase {phase} of vs-{scenario_uuid} (now {self.phase(scenario_uuid)})",
        )
        body = self.vs(scenario_uuid)
        assert body is not None
        return body
