"""Start-up latency to a *running* runner on the local node, next to the local runtime in the same run:
`to_deploy` produced -> runner Pod Running (its container started) -> first result stored, p50/p99 over
N scenarios reading one RTSP camera; plus the node's own memory (containerd, kubelet, the shims) and
the size of each image.

Kubernetes: charts/vap installed on the node with values-local.yaml (its operator, inbox, runner
containers). Local: the operator with VAP_RUNTIME=local and the inbox as processes of this machine,
runners as its children. Both get the same DeployCommands (the orchestrator is bypassed, as in
operator_bench.py) in their own schema and topic prefix.

Against the local stack (./dev/infra up):  .venv/bin/python -m bench.node_bench [--scenarios 20]
Prints the figures and writes bench/results/node.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from sqlalchemy import insert, text

from bench._api_common import Child, percentile, record
from bench.operator_bench import (
    KUBECONFIG,
    ROOT,
    database,
    deploy_commands,
    operator_env,
    produce_burst,
    start_process,
    stop_process,
    topics,
    wait_for_group,
)
from dev.platform_stack import RtspCamera
from vap_common.contracts import DeployCommand
from vap_common.db import make_engine
from vap_common.schema import Scenario
from vap_common.settings import DatabaseSettings
from vap_operator.kube.manifests import LABEL_SCENARIO, RUNNER_SELECTOR

RESULTS = ROOT / "bench" / "results" / "node.json"
CHART = ROOT / "charts" / "vap"
NODE_DIR = ROOT / ".vap" / "node"
VIDEO = ROOT / "media" / "one-by-one-person-detection.mp4"
# The camera is on loopback, which the runners refuse unless their operator's policy allows it.
RUNNER = {"VAP_RUNNER__MAX_WORKERS": "1", "VAP_RUNNER__TARGET_FPS": "5", "VAP_CAMERA_POLICY__ALLOW": "127.0.0.0/8"}


def accepted(db: DatabaseSettings, commands: list[DeployCommand]) -> list[DeployCommand]:
    """The scenarios rows the API would have written (the inbox stores results of known scenarios only)."""
    engine = make_engine(db, pool_size=1)
    try:
        with engine.begin() as connection:
            rows = [
                {"scenario_uuid": c.scenario_uuid, "camera_url": c.camera_url, "status": "in_startup_processing"}
                for c in commands
            ]
            connection.execute(insert(Scenario), rows)
    finally:
        engine.dispose()
    return commands


def first_results(db: DatabaseSettings, scenarios: set[uuid.UUID], timeout_seconds: float) -> dict[uuid.UUID, float]:
    """When each scenario's first result was seen stored (polled every 0.1 s)."""
    engine = make_engine(db, pool_size=1)
    seen: dict[uuid.UUID, float] = {}
    deadline = time.monotonic() + timeout_seconds
    try:
        while len(seen) < len(scenarios) and time.monotonic() < deadline:
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT DISTINCT scenario_uuid FROM scenario_results")).scalars().all()
            now = time.time()
            for scenario in set(rows) - set(seen):
                seen[scenario] = now
            time.sleep(0.1)
    finally:
        engine.dispose()
    if len(seen) < len(scenarios):
        raise RuntimeError(f"only {len(seen)} of {len(scenarios)} scenarios stored a result in {timeout_seconds:.0f} s")
    return seen


def milliseconds(sent: dict[uuid.UUID, float], at: dict[uuid.UUID, float]) -> dict[str, float]:
    latencies = [(at[scenario] - sent[scenario]) * 1000 for scenario in sent]
    return {
        "p50_ms": round(percentile(latencies, 0.5)),
        "p99_ms": round(percentile(latencies, 0.99)),
        "max_ms": round(max(latencies)),
    }


def helm(*args: str) -> None:
    subprocess.run(["helm", "--kubeconfig", KUBECONFIG, *args], check=True, capture_output=True, timeout=600)


def bench_node(count: int, camera: RtspCamera) -> dict[str, Any]:
    namespace = f"bench-node-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(config.new_client_from_config(config_file=KUBECONFIG))
    with database() as db, topics() as kafka:
        helm("install", "vap", str(CHART), "-n", namespace, "--create-namespace",
             "-f", str(CHART / "values-local.yaml"),
             "--set", f"database.url={db.url}", "--set", f"database.schemaName={db.schema_name}",
             "--set", f"kafka.topicPrefix={kafka.topic_prefix}",
             "--set", "runner.resources.requests.cpu=10m", "--wait", "--timeout", "5m")  # fmt: skip
        try:
            for name in ("api", "relay", "inbox", "operator"):
                subprocess.run(
                    [
                        "kubectl",
                        "--kubeconfig",
                        KUBECONFIG,
                        "-n",
                        namespace,
                        "rollout",
                        "status",
                        f"deployment/vap-{name}",
                        "--timeout=180s",
                    ],
                    check=True,
                    capture_output=True,
                )
            wait_for_group(kafka, "vap-runtime-kubernetes")
            running: dict[uuid.UUID, float] = {}
            stop = threading.Event()

            def watch_running() -> None:
                stream = watch.Watch()
                for event in stream.stream(
                    core.list_namespaced_pod, namespace, label_selector=RUNNER_SELECTOR, timeout_seconds=600
                ):
                    pod = event["object"]
                    statuses = pod.status.container_statuses or []
                    if statuses and statuses[0].state.running is not None:
                        running.setdefault(uuid.UUID(pod.metadata.labels[LABEL_SCENARIO]), time.time())
                    if stop.is_set():
                        stream.stop()

            watcher = threading.Thread(target=watch_running, daemon=True)
            watcher.start()
            commands = accepted(db, deploy_commands(db, count, camera.url))
            sent = produce_burst(kafka, commands)
            try:
                stored = first_results(db, set(sent), 300)
            except RuntimeError:
                for what in (
                    ["get", "pods,videoscenarios"],
                    ["logs", "deployment/vap-operator", "--tail=30"],
                    ["logs", "deployment/vap-inbox", "--tail=10"],
                ):
                    print(
                        subprocess.run(
                            ["kubectl", "--kubeconfig", KUBECONFIG, "-n", namespace, *what],
                            capture_output=True,
                            text=True,
                            check=False,
                        ).stdout[-3000:]
                    )
                raise
            stop.set()
            loaded = node_memory()  # every runner Pod running
            return {
                "to_running": milliseconds(sent, running),
                "to_first_stored": milliseconds(sent, stored),
                "node_memory_mib_with_runners": loaded,
            }
        finally:
            helm("uninstall", "vap", "-n", namespace, "--wait", "--timeout", "5m")
            subprocess.run(
                ["kubectl", "--kubeconfig", KUBECONFIG, "delete", "namespace", namespace, "--wait=false"],
                check=False,
                capture_output=True,
            )


def bench_local(count: int, camera: RtspCamera, workdir: Path) -> dict[str, Any]:
    with database() as db, topics() as kafka:
        env = operator_env(
            db,
            kafka,
            VAP_RUNTIME="local",
            VAP_LOCAL__CONSUMER_GROUP=f"{kafka.topic_prefix}bench",
            VAP_LOCAL__CAPACITY=str(count),
            **RUNNER,
        )
        inbox = Child(
            "vap_api.inbox",
            {**env, "VAP_INBOX__CONSUMER_GROUP": f"{kafka.topic_prefix}inbox"},
            workdir / "node-bench-inbox.log",
        )
        runtime = start_process(env, workdir / "node-bench-local.log")
        try:
            wait_for_group(kafka, env["VAP_LOCAL__CONSUMER_GROUP"])
            sent = produce_burst(kafka, accepted(db, deploy_commands(db, count, camera.url)))
            stored = first_results(db, set(sent), 600)
            return {"to_first_stored": milliseconds(sent, stored)}
        finally:
            stop_process(runtime)
            inbox.stop()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def node_memory() -> dict[str, float]:
    """Resident memory of the node's own processes: containerd, kubelet, and the shims (one per Pod)."""
    figures = {
        name: round(rss_mib(int((ROOT / ".vap" / f"{name}.pid").read_text())), 1) for name in ("containerd", "kubelet")
    }
    shims = [
        int(pid)
        for pid in subprocess.run(
            ["pgrep", "-f", f"containerd-shim-runc-v2 .*{NODE_DIR}"], capture_output=True, text=True, check=False
        ).stdout.split()
    ]
    figures["shims"] = round(sum(rss_mib(pid) for pid in shims), 1)
    figures["shim_count"] = len(shims)
    return figures


def image_sizes() -> dict[str, float]:
    """Each image's size in containerd (its compressed layers)."""
    address = str(NODE_DIR / "containerd.sock")
    listed = subprocess.run(
        ["ctr", "--address", address, "-n", "k8s.io", "images", "ls"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    sizes: dict[str, float] = {}
    to_mib = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}
    for line in listed[1:]:
        words = line.split()  # REF TYPE DIGEST SIZE UNIT PLATFORMS LABELS
        if words[0].startswith("docker.io/library/vap-"):
            unit = next(index for index, word in enumerate(words) if word in to_mib)
            sizes[words[0].removeprefix("docker.io/library/")] = round(float(words[unit - 1]) * to_mib[words[unit]], 1)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=20)
    args = parser.parse_args()
    workdir = ROOT / ".vap" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KUBECONFIG", KUBECONFIG)
    camera = RtspCamera(VIDEO)
    camera.start()
    try:
        idle = node_memory()
        print(f"node memory at rest: {idle}", flush=True)
        print(f"kubernetes (real node): {args.scenarios} scenarios ...", flush=True)
        node = bench_node(args.scenarios, camera)
        print(f"  to_deploy -> Pod Running      {node['to_running']}", flush=True)
        print(f"  to_deploy -> first stored     {node['to_first_stored']}", flush=True)
        print(f"  node memory with the runners  {node['node_memory_mib_with_runners']}", flush=True)
        print(f"local runtime: {args.scenarios} scenarios ...", flush=True)
        local = bench_local(args.scenarios, camera, workdir)
        print(f"  to_deploy -> first stored     {local['to_first_stored']}", flush=True)
    finally:
        camera.stop()
    ratio = node["to_first_stored"]["p50_ms"] / max(local["to_first_stored"]["p50_ms"], 1)
    print(f"first result stored, p50: node {ratio:.2f}x the local runtime", flush=True)
    sizes = image_sizes()
    print(f"images (MiB in containerd): {sizes}", flush=True)
    figures = {
        "scenarios": args.scenarios,
        "kubernetes": node,
        "local": local,
        "node_first_stored_p50_ratio": round(ratio, 2),
    }
    record("start_to_first_result", {**figures, "node_memory_mib_at_rest": idle, "image_mib": sizes}, results=RESULTS)
    print(f"written {RESULTS.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
