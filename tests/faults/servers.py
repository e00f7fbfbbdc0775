"""Private real servers for the fault tests: an Apache Kafka KRaft broker and a PostgreSQL cluster,
each on free loopback ports with its state in a folder of the test, started and stopped (or killed,
or frozen) by the test, so a fault never touches the shared stack of ./dev/infra.

They are started the way ./dev/infra starts the shared ones (dev/lib/kafka.sh, dev/lib/postgres.sh):
the Kafka jars ./dev/infra fetched into ~/.cache/vap/kafka-<version>/lib, run with the machine's JDK;
Debian's PostgreSQL server binaries, run as the ``postgres`` user when the tests run as root.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from dev.platform_stack import ROOT, free_port
from vap_common.kafka import ensure_topics
from vap_common.settings import DatabaseSettings, KafkaSettings
from vap_common.topics import all_topic_names

# librdkafka's "connection refused" lines while a broker starts go to logging (captured), not stderr.
_CLIENT_LOG = logging.getLogger("tests.faults.kafka")

CACHE = Path(os.environ.get("VAP_CACHE_DIR", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vap"))


def _admin_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap_servers, "logger": _CLIENT_LOG, **overrides}


def kafka_version() -> str:
    """The Kafka version ./dev/infra uses (dev/kafka/pom.xml)."""
    found = re.search(r"<kafka.version>(.+?)</kafka.version>", (ROOT / "dev" / "kafka" / "pom.xml").read_text())
    assert found, "no <kafka.version> in dev/kafka/pom.xml"
    return found.group(1)


def kafka_lib() -> Path:
    lib = CACHE / f"kafka-{kafka_version()}" / "lib"
    if not (lib / ".complete").exists():
        raise RuntimeError(f"Kafka jars not found in {lib}: run ./dev/infra up once (it fetches them)")
    return lib


def _wait_gone(process: subprocess.Popen[bytes], timeout_seconds: float) -> bool:
    try:
        process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


@dataclass
class KafkaBroker:
    """One combined broker+controller (KRaft) with its data in ``state_dir``, kept across restarts
    (topics and committed offsets survive kill/stop and start)."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # In a KafkaCluster: this node's id, the quorum's voters, the shared cluster id, replication.
    node_id: int = 1
    voters: str = ""
    cluster_id: str = ""
    replication: int = 1

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self, topic_prefix: str = "") -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap_servers, topic_prefix=topic_prefix)

    @property
    def log_file(self) -> Path:
        return self.state_dir / "kafka.log"

    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java not found (./dev/infra up installs a JDK)")
        return [
            java, "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}", "-cp", f"{kafka_lib()}/*",
        ]  # fmt: skip

    def _write_config(self) -> None:
        """server.properties and log4j2.properties of dev/lib/kafka.sh, on this broker's ports."""
        data = self.state_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "server.properties").write_text(
            "process.roles=broker,controller\n"
            f"node.id={self.node_id}\n"
            f"controller.quorum.voters={self.voters or f'{self.node_id}@127.0.0.1:{self.controller_port}'}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            f"log.dirs={data}\n"
            "num.partitions=3\n"
            f"default.replication.factor={self.replication}\n"
            f"min.insync.replicas={min(2, self.replication)}\n"
            f"offsets.topic.replication.factor={self.replication}\n"
            # Fewer than the shared broker's 10: created on the first group's join, cheaper on 2 cores.
            "offsets.topic.num.partitions=3\n"
            f"transaction.state.log.replication.factor={self.replication}\n"
            f"transaction.state.log.min.isr={min(2, self.replication)}\n"
            f"share.coordinator.state.topic.replication.factor={self.replication}\n"
            f"share.coordinator.state.topic.min.isr={min(2, self.replication)}\n"
            "group.initial.rebalance.delay.ms=0\n"
            # A restarted broker registers with its controller only once the registration of the
            # killed one expired: 9 s by default, which would add 9 s to every restart after kill -9.
            "broker.session.timeout.ms=2000\n"
            "broker.heartbeat.interval.ms=500\n"
            "auto.create.topics.enable=false\n"
        )
        (self.state_dir / "log4j2.properties").write_text(
            "rootLogger.level = WARN\n"
            "rootLogger.appenderRef.stdout.ref = STDOUT\n"
            "appender.stdout.type = Console\n"
            "appender.stdout.name = STDOUT\n"
            "appender.stdout.layout.type = PatternLayout\n"
            "appender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
            "logger.kafka.name = kafka\n"
            "logger.kafka.level = WARN\n"
            "logger.state.name = state.change.logger\n"
            "logger.state.level = WARN\n"
        )

    def start(self) -> None:
        """Start the broker (formatting its storage the first time); returns at once (see wait_ready)."""
        assert self.process is None, "the broker is already running"
        self._write_config()
        properties = str(self.state_dir / "server.properties")
        if not (self.state_dir / "data" / "meta.properties").exists():
            cluster_id = self.cluster_id or new_cluster_id()
            with self.log_file.open("ab") as log:
                subprocess.run(
                    [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", properties],
                    stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120,
                )  # fmt: skip
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [*self._java(), "kafka.Kafka", properties],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, timeout_seconds: float = 90.0) -> None:
        """Until the broker answers a metadata request (not merely an open port)."""
        admin = AdminClient(_admin_config(self.bootstrap_servers, **{"socket.connection.setup.timeout.ms": 2000}))
        deadline = time.monotonic() + timeout_seconds
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited; log {self.log_file}:\n{self.log_tail()}")
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception:  # noqa: BLE001, S110 - not up yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the Kafka broker is not ready after {timeout_seconds:g}s; log {self.log_file}:\n{self.log_tail()}"
                )
            time.sleep(0.3)

    def create_topics(self, prefix: str) -> list[str]:
        """The platform's topics (and their .dlq topics) under ``prefix``, as ./dev/infra creates them."""
        admin = AdminClient(_admin_config(self.bootstrap_servers))
        names = all_topic_names(prefix)
        ensure_topics(admin, names)
        return names

    def restore(self) -> None:
        """Running again after a fault: started if it was killed, thawed if it was frozen."""
        if self.process is None:
            self.start()
            self.wait_ready()
        else:
            self.thaw()

    def kill(self) -> None:
        """SIGKILL: the broker dies at once, mid-write (a frozen one too)."""
        self._signal_and_wait(signal.SIGKILL, 30)

    def stop(self) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL after 30 s; thaws a frozen broker first."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.send_signal(signal.SIGTERM)
        if not _wait_gone(self.process, 30):
            self.process.kill()
            self.process.wait()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the broker holds its connections but answers nothing (a broker starved of CPU)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _signal_and_wait(self, sig: int, timeout_seconds: float) -> None:
        assert self.process is not None, "the broker is not running"
        self.process.send_signal(sig)
        if not _wait_gone(self.process, timeout_seconds):
            raise TimeoutError(f"the Kafka broker did not exit {timeout_seconds:g}s after signal {sig}")
        self.process = None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def new_cluster_id() -> str:
    """A Kafka Uuid as StorageTool random-uuid prints it: 16 random bytes, URL-safe base64, no padding,
    never starting with "-" (Kafka draws again then: the command line would take it for an option)."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


@dataclass
class KafkaCluster:
    """Three KRaft brokers+controllers in one quorum, as ``VAP_KAFKA_BROKERS=3 ./dev/infra up`` runs
    them: topics replicated three times, min.insync.replicas 2, so one node may die under acks=all."""

    state_dir: Path
    nodes: list[KafkaBroker] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            cluster_id = new_cluster_id()
            self.nodes = [
                KafkaBroker(self.state_dir / f"node-{index}", node_id=index, cluster_id=cluster_id, replication=3)
                for index in (1, 2, 3)
            ]
            voters = ",".join(f"{node.node_id}@127.0.0.1:{node.controller_port}" for node in self.nodes)
            for node in self.nodes:
                node.voters = voters

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    @property
    def log_file(self) -> Path:
        return self.nodes[0].log_file

    def settings(self, topic_prefix: str = "") -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap_servers, topic_prefix=topic_prefix)

    def start(self) -> None:
        for node in self.nodes:
            if node.process is None:
                node.start()

    def wait_ready(self, timeout_seconds: float = 120.0) -> None:
        """Until every node is in the cluster's metadata."""
        admin = AdminClient(_admin_config(self.bootstrap_servers, **{"socket.connection.setup.timeout.ms": 2000}))
        deadline = time.monotonic() + timeout_seconds
        while True:
            for node in self.nodes:
                if node.process is None or node.process.poll() is not None:
                    raise RuntimeError(f"Kafka node {node.node_id} exited; log {node.log_file}:\n{node.log_tail()}")
            try:
                if len(admin.list_topics(timeout=2).brokers) == len(self.nodes):
                    return
            except Exception:  # noqa: BLE001, S110 - not up yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Kafka cluster is not ready after {timeout_seconds:g}s")
            time.sleep(0.3)

    def create_topics(self, prefix: str) -> list[str]:
        names = all_topic_names(prefix)
        ensure_topics(AdminClient(_admin_config(self.bootstrap_servers)), names)
        return names

    def leader_of_most(self, topic: str) -> KafkaBroker:
        """The node that leads most partitions of ``topic`` (the one whose death moves the most)."""
        partitions = (
            AdminClient(_admin_config(self.bootstrap_servers))
            .list_topics(topic, timeout=10)
            .topics[topic]
            .partitions.values()
        )
        leaders = [partition.leader for partition in partitions]
        return max(self.nodes, key=lambda node: leaders.count(node.node_id))

    def restore(self) -> None:
        for node in self.nodes:
            if node.process is None:
                node.start()
            else:
                node.thaw()
        self.wait_ready()

    def stop(self) -> None:
        """Every node at once: one by one, the last ones lose their quorum and cannot stop cleanly."""
        for node in self.nodes:
            if node.process is not None:
                node.process.send_signal(signal.SIGCONT)
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- node {node.node_id} ---\n{node.log_tail(chars)}" for node in self.nodes)


# --- PostgreSQL ---------------------------------------------------------------------------------------


def pg_bindir() -> Path:
    """Debian's PostgreSQL server binaries (as dev/lib/postgres.sh finds them)."""
    config = shutil.which("pg_config")
    if config:
        bindir = Path(subprocess.run([config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    for candidate in sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name), reverse=True
    ):
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError("PostgreSQL server binaries not found (./dev/infra up installs Debian's postgresql)")


def _as_root() -> bool:
    return os.geteuid() == 0


def _as_owner(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` system user."""
    return ["runuser", "-u", "postgres", "--", *argv] if _as_root() else argv


@dataclass
class PostgresCluster:
    """A throwaway cluster (fsync=off) with one database and user, on a free port.

    As root the server runs as `postgres`, which cannot enter the test's private tmp_path: then the
    cluster lives in a folder of its own under /var/tmp (as dev/lib/postgres.sh does), removed by
    ``remove()``.
    """

    home: Path
    port: int = field(default_factory=free_port)
    user: str = "vap"
    password: str = "vap-faults-only"
    database: str = "vap"

    @classmethod
    def create(cls, tmp_path: Path) -> PostgresCluster:
        if _as_root():
            home = Path(tempfile.mkdtemp(prefix="vap-faults-pg-", dir="/var/tmp"))
            shutil.chown(home, user="postgres")
        else:
            home = tmp_path / "postgres"
            home.mkdir()
        return cls(home=home)

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def settings(self, schema_name: str | None = None) -> DatabaseSettings:
        return DatabaseSettings(url=self.url, schema_name=schema_name)

    def _run(self, argv: list[str], *, timeout_seconds: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            _as_owner(argv), cwd="/", capture_output=True, text=True, timeout=timeout_seconds, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}): {result.stdout}{result.stderr}\n{self.log_tail()}"
            )
        return result

    def init(self) -> None:
        """initdb, the server settings of dev/lib/postgres.sh, start, then the database."""
        bindir = pg_bindir()
        pwfile = self.home / "pwfile"
        pwfile.write_text(self.password + "\n")
        self.log_file.touch()
        if _as_root():
            shutil.chown(pwfile, user="postgres")
            shutil.chown(self.log_file, user="postgres")
        self._run([str(bindir / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])  # fmt: skip
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.home}'\n"
                "max_connections = 200\nfsync = off\nfull_page_writes = off\n"
                "synchronous_commit = off\nshared_buffers = 64MB\n"
            )
        self.start()
        self._run(
            [str(bindir / "createdb"), "-h", str(self.home), "-p", str(self.port), "-U", self.user, self.database]
        )

    def start(self) -> None:
        self._run(
            [str(pg_bindir() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", "60", "start"]
        )

    def stop(self) -> None:
        """pg_ctl stop -m fast: every session is cut, the server shuts down cleanly."""
        self._run([str(pg_bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def running(self) -> bool:
        return (
            subprocess.run(
                _as_owner([str(pg_bindir() / "pg_ctl"), "-D", str(self.data), "status"]),
                cwd="/",
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )

    def kill(self) -> None:
        """SIGKILL to the postmaster and every backend (a crash; the next start recovers from the WAL)."""
        pid_file = self.data / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        victims = [postmaster, *_children(postmaster)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        # Gone, not merely dead: the postmaster's new instance refuses to start while the old pid
        # exists, even as a zombie not yet reaped by init.
        while any(Path(f"/proc/{pid}").exists() for pid in victims):
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL processes still there 30 s after SIGKILL")
            time.sleep(0.1)

    def wait_ready(self, timeout_seconds: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        while (
            subprocess.run(
                [str(pg_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL not ready after {timeout_seconds:g}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        if self.data.exists() and self.running():
            self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found
