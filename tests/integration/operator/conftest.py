"""Fixtures of the operator tests: the operator's ServiceAccount (least-privilege RBAC, used for real by
every operator process), and vap-operator subprocesses on this test's schema, topics and namespace."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import free_port, has_failed, kubectl
from tests.helpers import UNSCHEDULED_RUNNERS, child_environment, service_settings
from tests.integration.operator.operator_test_support import (
    ROOT,
    Process,
    StatusLog,
    kube_client,
    rendered_manifests,
    token_kubeconfig,
    wait_http_ok,
)
from vap_common.db import make_session_factory
from vap_common.settings import DatabaseSettings, KafkaSettings

OPERATOR_MANIFESTS = ("serviceaccount.yaml", "role.yaml", "rolebinding.yaml", "peering.yaml")

# Fast restart policy and short peering lifetime: the tests observe backoff and fail-over in seconds.
FAST = {
    "VAP_RESTART__BACKOFF_BASE_SECONDS": "0.5",
    "VAP_RESTART__BACKOFF_MAX_SECONDS": "2",
    "VAP_RESTART__CRASH_LOOP_THRESHOLD": "3",
    "VAP_RESTART__CRASH_LOOP_WINDOW_SECONDS": "60",
    "VAP_RUNNER__STOP_GRACE_SECONDS": "1",
    "VAP_KUBERNETES__WAIT_POLL_SECONDS": "0.5",
    "VAP_KUBERNETES__PEERING_LIFETIME_SECONDS": "5",
    "VAP_CONSUMER_SESSION_TIMEOUT_SECONDS": "6",
    "VAP_LOG_LEVEL": "INFO",
}


def _stop_all(request: pytest.FixtureRequest, started: list[Process]) -> None:
    """Stop the test's processes; when the test failed, show the end of their logs."""
    for process in started:
        if process.alive():
            process.stop()
    if has_failed(request):
        for process in started:
            print(f"----- {process.name} (exit {process.popen.returncode}) log tail -----\n{process.log()[-6000:]}")


@pytest.fixture(scope="session")
def peering_crd(kubeconfig: str) -> str:
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "kopf-peering.yaml"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    return "kopfpeerings.kopf.dev"


@pytest.fixture
def operator_kubeconfig(
    kubeconfig: str, kube_namespace: str, videoscenario_crd: str, peering_crd: str, tmp_path: Path
) -> str:
    """A kubeconfig authenticating as the operator's ServiceAccount, bound to operator/manifests/role.yaml."""
    documents = rendered_manifests(kube_namespace, OPERATOR_MANIFESTS)
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    token = kubectl(kubeconfig, "-n", kube_namespace, "create", "token", "vap-operator", "--duration=1h").stdout.strip()
    return token_kubeconfig(kubeconfig, token, tmp_path / "operator-kubeconfig")


@pytest.fixture
def kube(kubeconfig: str) -> Iterator[client.ApiClient]:
    """An admin client for the test's own reads and the kubelet's part (Pod status)."""
    api = kube_client(kubeconfig)
    yield api
    api.close()


@pytest.fixture
def sessions(db_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(db_engine)


OperatorFactory = Callable[..., Process]


@pytest.fixture
def status_log(kafka_settings: KafkaSettings) -> Iterator[StatusLog]:
    """scenario_status of this test, read from the beginning."""
    log = StatusLog(kafka_settings)
    yield log
    log.close()


@pytest.fixture
def base_env(db_settings: DatabaseSettings, kafka_settings: KafkaSettings) -> dict[str, str]:
    return child_environment(service_settings(db_settings, kafka_settings, VAP_DATABASE__POOL_SIZE="2", **FAST))


@pytest.fixture
def start_operator(
    request: pytest.FixtureRequest,
    base_env: dict[str, str],
    operator_kubeconfig: str,
    kube_namespace: str,
    tmp_path: Path,
) -> Iterator[OperatorFactory]:
    """Start `python -m vap_operator` (kubernetes runtime + orchestrator) as the operator's ServiceAccount."""
    started: list[Process] = []

    def start(*, wait_ready: bool = True, **overrides: str) -> Process:
        port = free_port()
        env = {
            **base_env,
            "KUBECONFIG": operator_kubeconfig,
            "VAP_RUNTIME": "kubernetes",
            "VAP_KUBERNETES__NAMESPACE": kube_namespace,
            "VAP_KUBERNETES__LIVENESS_PORT": str(port),
            **UNSCHEDULED_RUNNERS,
            **overrides,
        }
        process = Process(
            f"operator-{len(started)}", env, tmp_path / f"operator-{len(started)}-{uuid.uuid4().hex[:4]}.log"
        )
        started.append(process)
        if wait_ready:
            wait_http_ok(f"http://127.0.0.1:{port}/healthz", process)
        return process

    yield start
    _stop_all(request, started)


@pytest.fixture
def start_local_runtime(
    request: pytest.FixtureRequest, base_env: dict[str, str], tmp_path: Path
) -> Iterator[OperatorFactory]:
    """Start `python -m vap_operator` with VAP_RUNTIME=local (+ orchestrator)."""
    started: list[Process] = []

    def start(*, runner_command: list[str], **overrides: str) -> Process:
        env = {**base_env, "VAP_RUNTIME": "local", "VAP_LOCAL__RUNNER_COMMAND": json.dumps(runner_command), **overrides}
        process = Process(f"local-{len(started)}", env, tmp_path / f"local-{len(started)}-{uuid.uuid4().hex[:4]}.log")
        started.append(process)
        return process

    yield start
    _stop_all(request, started)
