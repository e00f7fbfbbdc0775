"""Control-plane latency of the runtimes: a `to_deploy` message -> runner Pod object created (kubernetes
runtime) / runner process started (local runtime), for bursts of 100 and 500 scenarios.

Each burst produces N DeployCommands at once (the stream a big batch of API calls would make) and
measures, per scenario, the time from its produce call to the Pod's ADDED watch event (kubernetes)
or to the first instruction of the runner process (local: a shell that appends its start time to a
file, then execs `sleep`). The operator runs as `python -m vap_operator`, exactly as deployed.

Against the local stack (./dev/infra up):  .venv/bin/python -m bench.operator_bench [--sizes 100 500]
Prints the figures and writes bench/results/operator.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import ConsumerGroupState
from kubernetes import client, config, watch
from sqlalchemy import insert, text

from bench._api_common import percentile, wait_for
from vap_common.contracts import DeployCommand, encode
from vap_common.db import make_engine, migrate
from vap_common.kafka import ensure_topics, make_admin, make_producer
from vap_common.schema import Worker
from vap_common.settings import DatabaseServiceSettings, DatabaseSettings, KafkaSettings
from vap_common.topics import Topic, all_topic_names, dlq_name, topic_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "operator.json"
KUBECONFIG = os.environ.get("KUBECONFIG", str(ROOT / ".vap" / "kube" / "kubeconfig"))


def summary(latencies: list[float], total_seconds: float) -> dict[str, float]:
    return {
        "count": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "burst_seconds": round(total_seconds, 2),
        "per_second": round(len(latencies) / total_seconds, 1),
    }


# --- isolation: own schema, topic prefix, namespace -----------------------------------------------


@contextmanager
def database() -> Iterator[DatabaseSettings]:
    base = DatabaseServiceSettings().database
    schema = f"bench_op_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base, pool_size=1)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    settings = base.model_copy(update={"schema_name": schema})
    migrate(settings)
    try:
        yield settings
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def topics() -> Iterator[KafkaSettings]:
    settings = DatabaseServiceSettings().kafka.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}."})
    admin = make_admin(settings)
    names = all_topic_names(settings.topic_prefix)
    ensure_topics(admin, names)
    try:
        yield settings
    finally:
        for future in admin.delete_topics(names).values():
            future.result(timeout=30)


def kubectl(*args: str) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", KUBECONFIG, *args], capture_output=True, text=True, check=True, timeout=300
    ).stdout


@contextmanager
def namespace() -> Iterator[str]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "videoscenario.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/videoscenarios.vap.dev")
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def operator_env(db: DatabaseSettings, kafka: KafkaSettings, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VAP_")}
    env.update(
        {
            "VAP_DATABASE__URL": db.url,
            "VAP_DATABASE__SCHEMA_NAME": db.schema_name or "",
            "VAP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "VAP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "VAP_ORCHESTRATOR__ENABLED": "false",  # to_deploy is produced directly: the runtime alone is measured
            "VAP_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            **extra,
        }
    )
    return env


def deploy_commands(db: DatabaseSettings, count: int, camera_url: str) -> list[DeployCommand]:
    """``count`` deploys, each with the workers row the orchestrator writes before it publishes one
    (the runtimes refuse a deploy for a scenario the orchestrator never accepted)."""
    scenarios = [uuid.uuid4() for _ in range(count)]
    commands = [
        DeployCommand(scenario_uuid=s, worker_id=f"w-{s}", action="deploy", camera_url=camera_url) for s in scenarios
    ]
    engine = make_engine(db, pool_size=1)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(Worker),
                [
                    {
                        "worker_id": c.worker_id,
                        "scenario_uuid": c.scenario_uuid,
                        "camera_url": c.camera_url,
                        "status": "in_startup_processing",
                    }
                    for c in commands
                ],
            )
    finally:
        engine.dispose()
    return commands


def produce_burst(kafka: KafkaSettings, commands: list[DeployCommand]) -> dict[uuid.UUID, float]:
    """Produce every command at once; returns each one's produce time (epoch seconds)."""
    producer = make_producer(kafka, **{"linger.ms": 0})
    name = topic_name(Topic.TO_DEPLOY, kafka.topic_prefix)
    # A warm producer, as the orchestrator's is: producer id, metadata and connections ready (a cold
    # one spends ~0.5 s on them, which is not the runtime's latency). The warm-up goes to the DLQ topic.
    producer.list_topics(name, timeout=10)
    producer.produce(dlq_name(name), key="warm-up", value=b"{}")
    producer.flush(30)
    sent: dict[uuid.UUID, float] = {}
    for deploy in commands:
        sent[deploy.scenario_uuid] = time.time()
        producer.produce(name, key=str(deploy.scenario_uuid), value=encode(deploy))
        producer.poll(0)
    if producer.flush(30) != 0:
        raise RuntimeError("to_deploy messages not acknowledged")
    return sent


def start_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "vap_operator"], env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def wait_for_group(kafka: KafkaSettings, group: str) -> None:
    """Wait until the runtime's consumer group is stable (Kafka delays a new group's first join by
    ~3 s): the burst then measures the runtime, not the join."""
    admin = make_admin(kafka)

    def stable() -> bool:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        return bool(description.state == ConsumerGroupState.STABLE and description.members)

    wait_for(stable, timeout_seconds=60, what=f"consumer group {group}", interval_seconds=0.2)
    time.sleep(2)  # after the join: offsets fetched and reset, first fetch in flight


# --- kubernetes runtime ---------------------------------------------------------------------------


def bench_kubernetes(size: int, workdir: Path) -> dict[str, float]:
    with database() as db, topics() as kafka, namespace() as ns:
        api = config.new_client_from_config(config_file=KUBECONFIG)
        core = client.CoreV1Api(api)
        added: dict[str, float] = {}
        stop = threading.Event()

        def watch_pods() -> None:
            stream = watch.Watch()
            for event in stream.stream(core.list_namespaced_pod, ns, timeout_seconds=600):
                if event["type"] == "ADDED":
                    added.setdefault(event["object"].metadata.name, time.time())
                if stop.is_set():
                    stream.stop()

        watcher = threading.Thread(target=watch_pods, daemon=True)
        watcher.start()
        env = operator_env(
            db,
            kafka,
            KUBECONFIG=KUBECONFIG,
            VAP_RUNTIME="kubernetes",
            VAP_KUBERNETES__NAMESPACE=ns,
            VAP_KUBERNETES__PEERING_MODE="standalone",
            VAP_KUBERNETES__LIVENESS_PORT="0",
            VAP_KUBERNETES__CONSUMER_GROUP=f"{kafka.topic_prefix}bench",
        )
        operator = start_process(env, workdir / f"kubernetes-{size}.log")
        try:
            wait_for_group(kafka, env["VAP_KUBERNETES__CONSUMER_GROUP"])
            commands = deploy_commands(db, size, "rtsp://cam.example/stream")
            started = time.time()
            sent = produce_burst(kafka, commands)
            names = {deploy.scenario_uuid: f"vs-{deploy.scenario_uuid}-runner" for deploy in commands}
            wait_for(
                lambda: all(name in added for name in names.values()),
                timeout_seconds=600,
                what=f"{size} Pods",
                interval_seconds=0.2,
            )
            total = max(added[name] for name in names.values()) - started
            latencies = [added[names[s]] - sent[s] for s in sent]
            # Clean up through the finalizers while the operator still runs (no garbage collector here).
            kubectl("-n", ns, "delete", "videoscenarios", "--all", "--wait=false")
            wait_for(
                lambda: not core.list_namespaced_pod(ns).items,
                timeout_seconds=600,
                what="the Pods to be deleted",
                interval_seconds=0.2,
            )
        finally:
            stop.set()
            stop_process(operator)
            api.close()
    return summary(latencies, total)


# --- local runtime --------------------------------------------------------------------------------


def bench_local(size: int, workdir: Path) -> dict[str, float]:
    starts = workdir / f"local-{size}.starts"
    starts.unlink(missing_ok=True)
    # The smallest runner: record the start (scenario, epoch seconds), then wait to be stopped.
    runner = ["/bin/sh", "-c", f'echo "$VAP_SCENARIO_UUID $(date +%s.%N)" >> {starts}; exec sleep 3600']
    with database() as db, topics() as kafka:
        env = operator_env(
            db,
            kafka,
            VAP_RUNTIME="local",
            VAP_LOCAL__RUNNER_COMMAND=json.dumps(runner),
            VAP_LOCAL__CONSUMER_GROUP=f"{kafka.topic_prefix}bench",
            VAP_RUNNER__STOP_GRACE_SECONDS="5",
            # The control plane's own latency: no admission limit or start rate in the way.
            VAP_LOCAL__CAPACITY=str(size),
            VAP_LOCAL__STARTS_PER_SECOND="100000",
        )
        runtime = start_process(env, workdir / f"local-{size}.log")
        try:
            wait_for_group(kafka, env["VAP_LOCAL__CONSUMER_GROUP"])
            commands = deploy_commands(db, size, "file:///dev/null")
            started = time.time()
            sent = produce_burst(kafka, commands)

            def recorded() -> dict[uuid.UUID, float]:
                if not starts.exists():
                    return {}
                rows = [line.split() for line in starts.read_text().splitlines() if line.strip()]
                return {uuid.UUID(scenario): float(at) for scenario, at in rows}

            wait_for(
                lambda: len(recorded()) >= size,
                timeout_seconds=600,
                what=f"{size} runner processes",
                interval_seconds=0.2,
            )
            begun = recorded()
            total = max(begun.values()) - started
            latencies = [begun[s] - sent[s] for s in sent]
        finally:
            stop_process(runtime)
    return summary(latencies, total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--runtimes", nargs="+", default=["kubernetes", "local"], choices=["kubernetes", "local"])
    args = parser.parse_args()
    workdir = ROOT / ".vap" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for runtime in args.runtimes:
        for size in args.sizes:
            print(f"{runtime}: burst of {size} to_deploy messages ...", flush=True)
            result = bench_kubernetes(size, workdir) if runtime == "kubernetes" else bench_local(size, workdir)
            figures.setdefault(runtime, {})[str(size)] = result
            print(
                f"  p50 {result['p50_ms']} ms   p99 {result['p99_ms']} ms   max {result['max_ms']} ms   "
                f"({result['per_second']}/s, burst done in {result['burst_seconds']} s)",
                flush=True,
            )
    for runtime, by_size in figures.items():
        if "100" in by_size and "500" in by_size:
            growth = by_size["500"]["p99_ms"] / by_size["100"]["p99_ms"]
            print(f"{runtime}: p99 grows x{growth:.1f} from 100 to 500 scenarios (a burst queues behind itself)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "operator control-plane latency (to_deploy -> Pod created / runner process started)",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg(),
                },
                "figures": figures,
            },
            indent=2,
        )
    )
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
