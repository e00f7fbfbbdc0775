"""The kubernetes runtime from the platform's processes on this machine: REST API → outbox relay →
Kafka → orchestrator → the kopf operator writes the VideoScenario, the Secret and the runner Pod on the
real kube-apiserver; shutdown through the API removes the Pod and ends `inactive`.

These check what the operator writes, so their runner Pods are kept off the node (UNSCHEDULED_RUNNERS).
Runner containers really running, from a helm-installed platform, are test_e2e_node.py's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import pytest
from kubernetes import config

from dev.platform_stack import PlatformStack, create_api_key
from tests.e2e.e2e_support import Api
from tests.helpers import UNSCHEDULED_RUNNERS, wait_until
from tests.kube_cluster import Cluster


@pytest.fixture
def cluster(kubeconfig: str, kube_namespace: str) -> Iterator[Cluster]:
    api = config.new_client_from_config(config_file=kubeconfig)
    yield Cluster(api, kube_namespace)
    api.close()


@pytest.fixture
def kube_platform(
    kube_namespace: str, videoscenario_crd: str, kubeconfig: str, make_platform: Callable[..., PlatformStack]
) -> PlatformStack:
    """API, relay, inbox and the operator with VAP_RUNTIME=kubernetes in the test's namespace. The
    namespace comes first, so that it is deleted after the operator stopped (see kube_namespace)."""
    return make_platform(
        VAP_RUNTIME="kubernetes",
        KUBECONFIG=kubeconfig,
        VAP_KUBERNETES__NAMESPACE=kube_namespace,
        VAP_KUBERNETES__PEERING_MODE="standalone",  # one replica (peering is covered by the operator's tests)
        VAP_KUBERNETES__LIVENESS_PORT="0",
        VAP_KUBERNETES__WAIT_POLL_SECONDS="0.5",
        **UNSCHEDULED_RUNNERS,
    )


def test_kubernetes_runtime_keeps_camera_credentials_in_a_secret(
    kube_platform: PlatformStack, cluster: Cluster
) -> None:
    api = Api(
        kube_platform.api_url,
        api_key=create_api_key(kube_platform.environment, tenant="kube"),
        check_alive=kube_platform.check_alive,
    )
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


def test_a_camera_url_with_an_upper_case_scheme_runs_on_kubernetes_too(
    kube_platform: PlatformStack, cluster: Cluster
) -> None:
    """The API answered 201 to RTSP://... and the kubernetes runtime then failed it with InvalidConfig
    (its own rule wanted a lower-case scheme): both now admit it through vap_common.camera."""
    api = Api(
        kube_platform.api_url,
        api_key=create_api_key(kube_platform.environment, tenant="kube"),
        check_alive=kube_platform.check_alive,
    )
    scenario = api.init("RTSP://127.0.0.1:9/cam", detector="hog_person")
    cluster.wait_pod(scenario)
    videoscenario = cluster.vs(scenario)
    assert videoscenario is not None and videoscenario["spec"]["cameraURL"] == "rtsp://127.0.0.1:9/cam"
    assert api.scenario(scenario)["camera_url"] == "rtsp://127.0.0.1:9/cam"

    api.shutdown(scenario)
    wait_until(lambda: cluster.pod(scenario) is None, timeout_seconds=30, what="the Pod deleted on shutdown")
    api.wait_status(scenario, "inactive", timeout_seconds=30)
    api.close()
