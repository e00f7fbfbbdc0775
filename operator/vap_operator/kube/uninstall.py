"""``vap-remove-runners``: the chart's pre-delete hook, so that `helm uninstall` leaves no runner behind.

Runner Pods belong to VideoScenarios, which Helm does not own (the operator makes them). The hook
deletes every VideoScenario of the watched namespace while the operator still runs: its finalizer
(``handlers.cleanup``) stops each runner within its grace period and removes the camera Secret. If the
operator does not finish in time (it is down or broken), the hook deletes the runner Pods itself and
drops the finalizers, so an uninstall never hangs on a missing operator.
"""

from __future__ import annotations

import argparse
import logging
import time

from vap_operator.kube.api import KubeApi, load_config
from vap_operator.kube.manifests import RUNNER_SELECTOR
from vap_operator.logs import setup_logging

log = logging.getLogger(__name__)


def remove_runners(kube: KubeApi, *, timeout_seconds: float, poll_seconds: float = 1.0) -> bool:
    """Delete every VideoScenario and wait for the runner Pods to go; True when the operator did it all."""
    for videoscenario in kube.list_videoscenarios():
        kube.delete_videoscenario(videoscenario["metadata"]["name"])
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not kube.list_videoscenarios() and not kube.list_pods(RUNNER_SELECTOR):
            return True
        time.sleep(poll_seconds)
    for pod in kube.list_pods(RUNNER_SELECTOR):
        kube.delete_pod(pod["metadata"]["name"], uid=pod["metadata"]["uid"], grace_period_seconds=None)
    for videoscenario in kube.list_videoscenarios():
        kube.patch_videoscenario(videoscenario["metadata"]["name"], {"metadata": {"finalizers": None}})
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespace", required=True, help="the namespace the operator watches")
    parser.add_argument(
        "--timeout-seconds", type=float, default=120.0, help="how long the operator is given to stop the runners"
    )
    args = parser.parse_args()
    setup_logging(service="vap-remove-runners", level="INFO")
    load_config()
    kube = KubeApi(args.namespace)
    by_operator = remove_runners(kube, timeout_seconds=args.timeout_seconds)
    log.info("runners removed", extra={"namespace": args.namespace, "by_operator": by_operator})
