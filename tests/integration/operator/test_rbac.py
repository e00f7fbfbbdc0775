"""The operator's RBAC (operator/manifests) on the real API server: what its ServiceAccount may and may not do."""

from __future__ import annotations

import json

from tests.conftest import kubectl

ALLOWED = [
    ("create", "videoscenarios.vap.dev"),
    ("watch", "videoscenarios.vap.dev"),
    ("patch", "videoscenarios.vap.dev"),
    ("patch", "videoscenarios.vap.dev", "--subresource=status"),
    ("create", "pods"),
    ("delete", "pods"),
    ("watch", "pods"),
    ("create", "secrets"),
    ("delete", "secrets"),
    ("create", "events"),
    ("patch", "kopfpeerings.kopf.dev"),
    ("watch", "kopfpeerings.kopf.dev"),
]
DENIED = [
    ("delete", "videoscenarios.vap.dev"),  # the operator never deletes a scenario's object
    ("update", "pods"),  # a runner Pod is replaced, never edited
    ("patch", "pods", "--subresource=status"),  # that is the kubelet's
    ("create", "pods", "--subresource=exec"),
    ("list", "secrets"),  # it reads only the Secrets it made, by name
    ("create", "deployments.apps"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("delete", "kopfpeerings.kopf.dev"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "nodes"),
    ("list", "namespaces"),
]


def _can_i(kubeconfig: str, namespace: str, *query: str) -> bool:
    result = kubectl(kubeconfig, "-n", namespace, "auth", "can-i", *query, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def test_operator_account_may_do_what_the_operator_does(operator_kubeconfig: str, kube_namespace: str) -> None:
    missing = [query for query in ALLOWED if not _can_i(operator_kubeconfig, kube_namespace, *query)]
    assert missing == []


def test_operator_account_is_denied_everything_else(operator_kubeconfig: str, kube_namespace: str) -> None:
    allowed = [query for query in DENIED if _can_i(operator_kubeconfig, kube_namespace, *query)]
    assert allowed == []
    # Nothing at all outside its namespace.
    assert not _can_i(operator_kubeconfig, "default", "get", "pods")
    assert not _can_i(operator_kubeconfig, "default", "create", "videoscenarios.vap.dev")


def test_operator_account_may_not_grant_itself_more(operator_kubeconfig: str, kube_namespace: str) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "more"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    result = kubectl(
        operator_kubeconfig, "-n", kube_namespace, "create", "-f", "-", stdin=json.dumps(role), check=False
    )
    assert result.returncode != 0 and "forbidden" in result.stderr
