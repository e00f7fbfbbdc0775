"""The few Kubernetes API calls the operator makes, on plain dicts (the official client, sync).

kopf handlers are sync functions run in kopf's thread pool, and the to_deploy consumer runs in a
thread of its own, so a blocking client is the simple choice. Not-found and already-exists are
answers here, not errors: every caller is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3 import HTTPResponse

from vap_operator.kube.crd import GROUP, PLURAL, VERSION

MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "vap-operator"

Body = dict[str, Any]
T = TypeVar("T")
GONE, EXISTS = (404,), (409,)
# The generated client is typed for its model classes but sends plain dicts as they are, and with
# _preload_content=False returns the HTTP response: the casts below say so to the type checker.


def load_config() -> None:
    """In-cluster credentials when running in a Pod, else the kubeconfig ($KUBECONFIG)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def api_server() -> list[tuple[str, int]]:
    """(host, port) of the Kubernetes API server the loaded configuration talks to (none before
    load_config): a platform server, which no camera may be."""
    parts = urlsplit(client.Configuration.get_default_copy().host)
    return [(parts.hostname, parts.port or (80 if parts.scheme == "http" else 443))] if parts.hostname else []


class KubeApi:
    """Namespaced reads and writes of VideoScenarios, runner Pods and camera Secrets."""

    def __init__(self, namespace: str, api_client: client.ApiClient | None = None) -> None:
        self.namespace = namespace
        self._client = api_client or client.ApiClient()
        self._core = client.CoreV1Api(self._client)
        self._custom = client.CustomObjectsApi(self._client)

    # --- VideoScenario ---------------------------------------------------------------------------

    def create_videoscenario(self, body: Body) -> Body | None:
        """Create; None when an object of that name exists already."""
        return _or_none(
            lambda: _raw(
                self._custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, body, field_manager=FIELD_MANAGER
                )
            ),
            when=EXISTS,
        )

    def read_videoscenario(self, name: str) -> Body | None:
        return _or_none(
            lambda: _raw(self._custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)),
            when=GONE,
        )

    def list_videoscenarios(self, *, from_cache: bool = False) -> list[Body]:
        """Every VideoScenario; ``from_cache``: the API server's watch cache (cheap, may lag a moment)."""
        listed = self._custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, resource_version="0" if from_cache else None
        )
        return list(_raw(listed)["items"])

    def patch_videoscenario(self, name: str, patch: Body) -> Body | None:
        """Merge-patch the object (spec/metadata); None when it does not exist."""
        return self._merge_patch(self._custom.patch_namespaced_custom_object, name, patch)

    def delete_videoscenario(self, name: str) -> None:
        """Delete (the operator's finalizer then stops the runner); nothing when it is gone already."""
        _or_none(
            lambda: self._custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
            when=GONE,
        )

    def patch_videoscenario_status(self, name: str, patch: Body) -> Body | None:
        """Merge-patch the status subresource; None when the object does not exist."""
        return self._merge_patch(self._custom.patch_namespaced_custom_object_status, name, patch)

    def _merge_patch(self, method: Callable[..., object], name: str, patch: Body) -> Body | None:
        return _or_none(
            lambda: _raw(
                method(
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    name,
                    patch,
                    field_manager=FIELD_MANAGER,
                    _content_type=MERGE_PATCH,
                )
            ),
            when=GONE,
        )

    # --- Pods ------------------------------------------------------------------------------------

    def read_pod(self, name: str) -> Body | None:
        response = _or_none(
            lambda: self._core.read_namespaced_pod(name, self.namespace, _preload_content=False), when=GONE
        )
        return None if response is None else dict(json.loads(cast(HTTPResponse, response).data))

    def list_pods(self, label_selector: str) -> list[Body]:
        response = self._core.list_namespaced_pod(self.namespace, label_selector=label_selector, _preload_content=False)
        return list(json.loads(cast(HTTPResponse, response).data)["items"])

    def create_pod(self, body: Body) -> bool:
        """Create; False when a Pod of that name exists already."""
        try:
            self._core.create_namespaced_pod(self.namespace, cast(client.V1Pod, body), field_manager=FIELD_MANAGER)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_pod(self, name: str, *, uid: str, grace_period_seconds: int | None) -> bool:
        """Delete the Pod only if it still is ``uid`` (never a newer one); False when gone or replaced."""
        options: Body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        try:
            self._core.delete_namespaced_pod(name, self.namespace, body=cast(client.V1DeleteOptions, options))
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    # --- Secrets ---------------------------------------------------------------------------------

    def apply_secret(self, body: Body) -> None:
        """Create the Secret, or replace its data and owner when it exists (same name, same purpose)."""
        try:
            self._core.create_namespaced_secret(
                self.namespace, cast(client.V1Secret, body), field_manager=FIELD_MANAGER
            )
        except ApiException as error:
            if error.status != 409:
                raise
            patch = {
                "metadata": {"labels": body["metadata"].get("labels", {})},
                "stringData": body.get("stringData", {}),
            }
            self._core.patch_namespaced_secret(
                body["metadata"]["name"], self.namespace, patch, field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH
            )

    def set_secret_owner(self, name: str, owner_references: list[Body]) -> None:
        patch = {"metadata": {"ownerReferences": owner_references}}
        _or_none(
            lambda: self._core.patch_namespaced_secret(
                name, self.namespace, patch, field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH
            ),
            when=GONE,
        )

    def delete_secret(self, name: str) -> None:
        _or_none(lambda: self._core.delete_namespaced_secret(name, self.namespace), when=GONE)


def _raw(result: object) -> Body:
    """The custom-objects API returns plain dicts already; keep the type honest."""
    if isinstance(result, dict):
        return result
    return dict(client.ApiClient().sanitize_for_serialization(result))  # type: ignore[no-untyped-call]


def _or_none(call: Callable[[], T], *, when: tuple[int, ...]) -> T | None:
    """``call()``, or None when the API server answers one of the statuses ``when`` (GONE, EXISTS)."""
    try:
        return call()
    except ApiException as error:
        if error.status in when:
            return None
        raise
