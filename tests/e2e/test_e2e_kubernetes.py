"""The kubernetes runtime end to end, as far as this machine allows: REST API → outbox relay → Kafka →
orchestrator → the kopf operator creates the VideoScenario and the runner Pod on the real
kube-apiserver; shutdown through the API removes the Pod and ends `inactive`.

Nothing here runs containers (no kubelet, no container engine), so :class:`StandInKubelet` plays the
kubelet's part for one Pod: it runs the Pod's container as a local `python -m vap_runner` process with
exactly the environment of the Pod spec the operator wrote (Secret references resolved), writes the
container's state into the Pod status, and stops the process with SIGTERM when the Pod is deleted.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from e2e_support import CAR_SAMPLED, CAR_URL, Api, ResultsTopic, check_stored_equals_published
from kubernetes import config
from platform_stack import PlatformStack
from sqlalchemy import Engine

from tests.conftest import free_port, kubectl
from tests.helpers import wait_until
from tests.kube_cluster import Cluster

SLOW = {"delay_ms": 400}  # ~15 s for the whole file: the scenario is still running when it is shut down


class StandInKubelet:
    """The kubelet's part for one runner Pod (see the module docstring)."""

    def __init__(self, cluster: Cluster, pod: dict[str, Any], log_path: Path) -> None:
        self.cluster = cluster
        self.name = pod["metadata"]["name"]
        [container] = pod["spec"]["containers"]
        self.grace_seconds = float(pod["spec"]["terminationGracePeriodSeconds"])
        self.http_port = free_port()  # a Pod has its own network namespace; local processes share one
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("VAP_")}
        environment = {**inherited, **{item["name"]: self._value(item) for item in container["env"]}, "VAP_HTTP_PORT": str(self.http_port)}
        with log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "vap_runner"], env=environment, stdout=log, stderr=subprocess.STDOUT)
        self._write_status("Running", ready=False)

    def _value(self, item: dict[str, Any]) -> str:
        if "value" in item:
            return str(item["value"])
        reference = item["valueFrom"]["secretKeyRef"]
        secret = self.cluster.secret(reference["name"])
        assert secret is not None, f"Secret {reference['name']} of env {item['name']} is missing"
        return base64.b64decode(secret["data"][reference["key"]]).decode()

    def _write_status(self, phase: str, **kwargs: Any) -> None:
        self.cluster.set_pod_named(self.name, phase, **kwargs)

    def _runner_ready(self) -> bool:
        assert self.process.poll() is None, f"the runner exited with {self.process.returncode}"
        try:
            return httpx2.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2).status_code == 200
        except httpx2.TransportError:
            return False

    def probe_until_ready(self) -> None:
        """The readiness probe of the Pod spec, then Ready=True in the Pod status."""
        wait_until(self._runner_ready, timeout_seconds=60, what=f"readiness of the runner of Pod {self.name}")
        self._write_status("Running", ready=True)

    def stop_when_deleted(self) -> int:
        """Wait for the Pod's deletion, then SIGTERM the container and wait its grace period; the exit code."""
        wait_until(lambda: self.cluster.pod_named(self.name) is None, timeout_seconds=30, what=f"Pod {self.name} deleted")
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=self.grace_seconds + 10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def cluster(kubeconfig: str, kube_namespace: str) -> Iterator[Cluster]:
    api = config.new_client_from_config(config_file=kubeconfig)
    yield Cluster(api, kube_namespace)
    api.close()


@pytest.fixture
def kube_platform(make_platform: Callable[..., PlatformStack], kubeconfig: str, kube_namespace: str, videoscenario_crd: str) -> PlatformStack:
    """API, relay, inbox and the operator with VAP_RUNTIME=kubernetes in the test's namespace."""
    return make_platform(
        VAP_RUNTIME="kubernetes",
        KUBECONFIG=kubeconfig,
        VAP_KUBERNETES__NAMESPACE=kube_namespace,
        VAP_KUBERNETES__PEERING_MODE="standalone",  # one replica (peering is covered by the operator's tests)
        VAP_KUBERNETES__LIVENESS_PORT="0",
        VAP_KUBERNETES__WAIT_POLL_SECONDS="0.5",
    )


def test_kubernetes_runtime_from_the_api_to_a_runner_pod_and_back(
    kube_platform: PlatformStack,
    cluster: Cluster,
    db_engine: Engine,
    results_topic: ResultsTopic,
    kubeconfig: str,
    kube_namespace: str,
    tmp_path: Path,
    sample_video: Path,
) -> None:
    api = Api(kube_platform.api_url, check_alive=kube_platform.check_alive)
    scenario = api.init(CAR_URL, settings=SLOW, name="kubernetes e2e")

    # The operator turned the API's command into a VideoScenario and exactly one runner Pod it owns.
    pod = cluster.wait_pod(scenario)
    videoscenario = cluster.vs(scenario)
    assert videoscenario is not None and videoscenario["spec"]["scenarioUUID"] == str(scenario)
    assert videoscenario["spec"]["desiredState"] == "active"
    [owner] = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("VideoScenario", f"vs-{scenario}", videoscenario["metadata"]["uid"])
    api.wait_status(scenario, "in_startup_processing", timeout_seconds=30)

    kubelet = StandInKubelet(cluster, pod, tmp_path / "runner.log")
    try:
        kubelet.probe_until_ready()
        cluster.wait_phase(scenario, "active")
        api.wait_status(scenario, "active", timeout_seconds=60)  # published by the runner after its first frame
        wait_until(lambda: len(api.frame_numbers(scenario)) >= 3, timeout_seconds=30, what="3 stored frames")
        listed = kubectl(kubeconfig, "-n", kube_namespace, "get", "videoscenarios").stdout
        assert str(scenario) in listed and "active" in listed, listed

        # Shutdown through the API: the operator deletes the Pod; the "kubelet" stops the container.
        assert api.shutdown(scenario)["status"] == "init_shutdown"
        assert kubelet.stop_when_deleted() == 0, (tmp_path / "runner.log").read_text()[-3000:]
    finally:
        kubelet.kill()
    api.wait_status(scenario, "inactive", timeout_seconds=30)
    cluster.wait_phase(scenario, "inactive")
    final = cluster.vs(scenario)
    assert final is not None and final["spec"]["desiredState"] == "inactive" and cluster.pod(scenario) is None

    # The runner's results went the same way as with the local runtime: each stored once, in frame order.
    runs = check_stored_equals_published(db_engine, results_topic, scenario)
    [frames] = runs.values()
    assert 3 <= len(frames) < len(CAR_SAMPLED) and frames == CAR_SAMPLED[: len(frames)], frames
    assert api.frame_numbers(scenario) == frames
    api.close()


def test_kubernetes_runtime_keeps_camera_credentials_in_a_secret(kube_platform: PlatformStack, cluster: Cluster) -> None:
    api = Api(kube_platform.api_url, check_alive=kube_platform.check_alive)
    camera_url = "rtsp://viewer:s3cret-pw@127.0.0.1:9/cam"
    scenario = api.init(camera_url, detector="hog_person")
    pod = cluster.wait_pod(scenario)
    videoscenario = cluster.vs(scenario)
    assert videoscenario is not None
    assert "s3cret-pw" not in json.dumps(videoscenario) and "s3cret-pw" not in json.dumps(pod)
    reference = videoscenario["spec"]["cameraSecretRef"]
    [camera_env] = [item for item in pod["spec"]["containers"][0]["env"] if item["name"] == "VAP_CAMERA_URL"]
    assert camera_env["valueFrom"]["secretKeyRef"] == reference
    secret = cluster.secret(reference["name"])
    assert secret is not None and base64.b64decode(secret["data"][reference["key"]]).decode() == camera_url
    assert "s3cret-pw" not in api.scenario(scenario)["camera_url"]

    api.shutdown(scenario)
    wait_until(lambda: cluster.pod(scenario) is None, timeout_seconds=30, what="the Pod deleted on shutdown")
    api.wait_status(scenario, "inactive", timeout_seconds=30)
    api.close()


def test_a_camera_url_with_an_upper_case_scheme_runs_on_kubernetes_too(kube_platform: PlatformStack, cluster: Cluster) -> None:
    """The API answered 201 to RTSP://... and the kubernetes runtime then failed it with InvalidConfig
    (its own rule wanted a lower-case scheme): both now admit it through vap_common.camera."""
    api = Api(kube_platform.api_url, check_alive=kube_platform.check_alive)
    scenario = api.init("RTSP://127.0.0.1:9/cam", detector="hog_person")
    cluster.wait_pod(scenario)
    videoscenario = cluster.vs(scenario)
    assert videoscenario is not None and videoscenario["spec"]["cameraURL"] == "rtsp://127.0.0.1:9/cam"
    assert api.scenario(scenario)["camera_url"] == "rtsp://127.0.0.1:9/cam"

    api.shutdown(scenario)
    wait_until(lambda: cluster.pod(scenario) is None, timeout_seconds=30, what="the Pod deleted on shutdown")
    api.wait_status(scenario, "inactive", timeout_seconds=30)
    api.close()
