"""vap_operator.kube.uninstall (the chart's pre-delete hook) against an in-memory stand-in of KubeApi."""

from __future__ import annotations

from typing import Any

from vap_operator.kube.manifests import RUNNER_SELECTOR
from vap_operator.kube.uninstall import remove_runners


class FakeKube:
    """VideoScenarios with the operator's finalizer and their runner Pods; ``operator_runs``: deleting a
    VideoScenario makes the operator remove its Pod and then the object."""

    def __init__(self, names: list[str], *, operator_runs: bool) -> None:
        self.videoscenarios = {name: {"metadata": {"name": name, "finalizers": ["kopf"]}} for name in names}
        self.pods = {f"{name}-runner": {"metadata": {"name": f"{name}-runner", "uid": f"uid-{name}"}} for name in names}
        self.operator_runs = operator_runs
        self.deleted_pods: list[str] = []
        self.patches: list[tuple[str, Any]] = []

    def list_videoscenarios(self) -> list[dict[str, Any]]:
        return list(self.videoscenarios.values())

    def list_pods(self, label_selector: str) -> list[dict[str, Any]]:
        assert label_selector == RUNNER_SELECTOR
        return list(self.pods.values())

    def delete_videoscenario(self, name: str) -> None:
        if self.operator_runs:
            self.pods.pop(f"{name}-runner")
            self.videoscenarios.pop(name)

    def delete_pod(self, name: str, *, uid: str, grace_period_seconds: int | None) -> bool:
        assert self.pods[name]["metadata"]["uid"] == uid
        self.deleted_pods.append(name)
        self.pods.pop(name)
        return True

    def patch_videoscenario(self, name: str, patch: dict[str, Any]) -> None:
        self.patches.append((name, patch))
        self.videoscenarios.pop(name)


def test_the_operator_stops_every_runner_and_nothing_is_forced() -> None:
    kube = FakeKube(["vs-a", "vs-b"], operator_runs=True)
    assert remove_runners(kube, timeout_seconds=5, poll_seconds=0.01) is True  # type: ignore[arg-type]
    assert not kube.pods and not kube.videoscenarios and not kube.deleted_pods and not kube.patches


def test_without_an_operator_the_hook_deletes_the_pods_and_drops_the_finalizers_after_the_timeout() -> None:
    kube = FakeKube(["vs-a", "vs-b"], operator_runs=False)
    assert remove_runners(kube, timeout_seconds=0.05, poll_seconds=0.01) is False  # type: ignore[arg-type]
    assert sorted(kube.deleted_pods) == ["vs-a-runner", "vs-b-runner"]
    assert kube.patches == [("vs-a", {"metadata": {"finalizers": None}}), ("vs-b", {"metadata": {"finalizers": None}})]
