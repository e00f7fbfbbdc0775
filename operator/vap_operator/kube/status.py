"""Translation between Kubernetes objects and the pure decisions: Pod -> ObservedPod, status <-> memory.

`status` of a VideoScenario holds only our fields (kopf keeps its progress in annotations):
phase (for display), podName, restarts, lastError, startedAt/stoppedAt, observedGeneration,
conditions (Ready, Failed, Stopped), crashes (the recent ones, for backoff and crash-loop
detection) and runner (the Pod's last observed state, written by the Pod watcher).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from vap_operator.decisions import (
    LIVE_POD_PHASES,
    WAITING_FOR_CAPACITY,
    Crash,
    DesiredState,
    ObservedPod,
    Plan,
    PodPhase,
    QueuedScenario,
    RunnerMemory,
)
from vap_operator.kube.manifests import HTTP_PORT_NAME, LABEL_SCENARIO

Body = dict[str, Any]
CONDITION_TYPES = ("Ready", "Failed", "Stopped")


def to_timestamp(moment: datetime) -> str:
    """RFC 3339 with microseconds (crash times are compared to sub-second backoffs)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_timestamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def observe_pod(pod: Mapping[str, Any] | None, *, owner_uid: str) -> ObservedPod | None:
    """The decision-relevant facts of a runner Pod (None: there is no Pod)."""
    if pod is None:
        return None
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    try:
        phase = PodPhase(status.get("phase") or "Pending")
    except ValueError:
        phase = PodPhase.UNKNOWN
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    exit_code: int | None = None
    message: str | None = None
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            exit_code = terminated.get("exitCode")
            message = terminated.get("message") or status.get("message")
    if exit_code is None and phase == PodPhase.FAILED:
        message = status.get("message") or status.get("reason")
    owners = metadata.get("ownerReferences") or []
    return ObservedPod(
        uid=str(metadata.get("uid", "")),
        phase=phase,
        ready=ready and phase == PodPhase.RUNNING,
        exit_code=exit_code,
        message=message,
        deleting=metadata.get("deletionTimestamp") is not None,
        owned=any(owner.get("uid") == owner_uid for owner in owners),
    )


def runner_summary(pod: ObservedPod | None, *, observed_at: datetime) -> Body:
    """What the Pod watcher mirrors into status.runner (a change wakes the reconciler).

    ``observedAt`` makes every mirror write a change. Without it, a write equal to the state kopf last
    handled (e.g. "no Pod" after a crashed Pod was deleted, as before the first Pod) is not a change
    to kopf, and it then drops the pending retry of ``reconcile`` (the restart never happens).
    """
    summary: Body = {"present": pod is not None, "observedAt": to_timestamp(observed_at)}
    if pod is not None:
        summary.update(
            uid=pod.uid, phase=pod.phase.value, ready=pod.ready, exitCode=pod.exit_code, deleting=pod.deleting
        )
    return summary


def _conditions(status: Mapping[str, Any]) -> dict[str, Body]:
    return {c["type"]: dict(c) for c in status.get("conditions") or [] if isinstance(c, Mapping) and "type" in c}


def memory_from_status(status: Mapping[str, Any] | None) -> RunnerMemory:
    status = status or {}
    conditions = _conditions(status)
    crashes = tuple(
        Crash(pod_uid=str(c.get("podUID", "")), at=from_timestamp(c["at"]), exit_code=c.get("exitCode"))
        for c in status.get("crashes") or []
        if isinstance(c, Mapping) and c.get("at")
    )

    def true_reason(kind: str) -> str | None:
        condition = conditions.get(kind)
        return str(condition.get("reason") or kind) if condition and condition.get("status") == "True" else None

    ready = conditions.get("Ready", {})
    return RunnerMemory(
        crashes=crashes,
        restarts=int(status.get("restarts") or 0),
        ready=ready.get("status") == "True",
        failed_reason=true_reason("Failed"),
        stopped_reason=true_reason("Stopped"),
        waiting_message=str(ready.get("message") or "") if ready.get("reason") == WAITING_FOR_CAPACITY else None,
    )


def render_status(
    plan: Plan,
    previous: Mapping[str, Any] | None,
    *,
    crashes: tuple[Crash, ...],
    generation: int,
    pod_name: str,
    now: datetime,
) -> Body:
    """The status stanza after ``plan`` (a merge patch: fields we do not own, e.g. runner, are untouched)."""
    previous = previous or {}
    stamp = to_timestamp(now)
    old = _conditions(previous)
    wanted: dict[str, tuple[str, str, str]] = {
        "Ready": ("True" if plan.ready else "False", plan.ready_reason, plan.message)
    }
    for kind, value in (("Failed", plan.failed), ("Stopped", plan.stopped)):
        if value is not None:
            wanted[kind] = ("True", value[0], value[1][:1000])
        elif kind not in old:
            wanted[kind] = ("False", f"Not{kind}", "")
    conditions: list[Body] = []
    for kind in CONDITION_TYPES:
        if kind not in wanted:
            conditions.append(dict(old[kind], observedGeneration=generation))
            continue
        state, reason, message = wanted[kind]
        before = old.get(kind, {})
        conditions.append(
            {
                "type": kind,
                "status": state,
                "reason": reason,
                "message": message,
                "lastTransitionTime": before.get("lastTransitionTime", stamp)
                if before.get("status") == state
                else stamp,
                "observedGeneration": generation,
            }
        )
    status: Body = {
        "phase": plan.phase.value,
        "podName": pod_name,
        "restarts": plan.restarts,
        "observedGeneration": generation,
        "conditions": conditions,
        "crashes": [
            {
                "podUID": crash.pod_uid,
                "at": to_timestamp(datetime.fromtimestamp(crash.at, UTC)),
                "exitCode": crash.exit_code,
            }
            for crash in crashes
        ],
    }
    if plan.last_error is not None:
        status["lastError"] = {"reason": plan.last_error[0], "message": plan.last_error[1][:1000]}
    if plan.ready and not previous.get("startedAt"):
        status["startedAt"] = to_timestamp(now)
    if (plan.failed is not None or plan.stopped is not None) and not previous.get("stoppedAt"):
        status["stoppedAt"] = to_timestamp(now)
    return status


# --- capacity, host ports and leases: over LISTs of runner Pods and VideoScenarios ------------------


def live_runner_pods(pods: Iterable[Mapping[str, Any]], *, except_name: str) -> int:
    """Runner Pods that hold a slot: not yet terminal (a finished Pod kept for its logs holds none)."""
    count = 0
    for pod in pods:
        observed = observe_pod(pod, owner_uid="")
        if (
            observed is not None
            and observed.phase in LIVE_POD_PHASES
            and (pod.get("metadata") or {}).get("name") != except_name
        ):
            count += 1
    return count


def runner_http_ports(pods: Iterable[Mapping[str, Any]]) -> set[int]:
    """The HTTP ports runner Pods have (container port `http`), whatever their phase: held until the Pod is gone."""
    return {
        int(port["containerPort"])
        for pod in pods
        for container in (pod.get("spec") or {}).get("containers") or []
        for port in container.get("ports") or []
        if port.get("name") == HTTP_PORT_NAME and port.get("containerPort")
    }


def queued_scenario(body: Mapping[str, Any]) -> QueuedScenario:
    """A VideoScenario's place in the capacity queue."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    waiting = (
        (body.get("spec") or {}).get("desiredState", DesiredState.ACTIVE.value) == DesiredState.ACTIVE.value
        and metadata.get("deletionTimestamp") is None
        and _conditions(status).get("Ready", {}).get("reason") == WAITING_FOR_CAPACITY
    )
    return QueuedScenario(
        created_at=str(metadata.get("creationTimestamp") or ""), name=str(metadata.get("name") or ""), waiting=waiting
    )


def ready_runner_scenarios(pods: Iterable[Mapping[str, Any]]) -> list[UUID]:
    """The scenarios whose runner Pod is Running and ready (their lease is renewed), by the Pod's label."""
    scenarios: list[UUID] = []
    for pod in pods:
        observed = observe_pod(pod, owner_uid="")
        label = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_SCENARIO)
        if observed is None or not observed.ready or not label:
            continue
        try:
            scenarios.append(UUID(str(label)))
        except ValueError:
            continue  # not one of ours after all: a hand-made Pod with our labels
    return scenarios
