"""kopf handlers: each VideoScenario -> exactly one runner Pod, its state mirrored into the CR status.

- ``reconcile`` (create / resume / spec change / status.runner change): read the Pod, ask
  :func:`vap_operator.decisions.plan_reconcile`, do the one action, write the status, post Events.
  Waiting (restart backoff, a Pod still terminating, no free runner slot under
  ``VAP_KUBERNETES__CAPACITY``, no free host port under ``VAP_KUBERNETES__HOST_NETWORK``) is
  ``kopf.TemporaryError(delay=...)``.
- ``mirror_runner_pod`` (Pod events): copies the Pod's state into ``status.runner`` of its owner,
  which wakes ``reconcile`` for that object (kopf does not trigger a parent on a child's change).
- ``cleanup`` (the finalizer): deletes the Pod and the camera Secret before the CR goes.
- ``resync_runner_status`` (a timer, registered by kube/run.py): the mirror again, in case a Pod
  event was lost (kopf does not retry event handlers).

Importing this module registers the handlers on kopf's default registry.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import kopf
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from vap_common.address_policy import AddressPolicy
from vap_common.db import transaction
from vap_common.lifecycle import ScenarioStatus
from vap_common.runner_contract import RUNNER_HTTP_PORT
from vap_common.settings import KafkaSettings
from vap_operator import workers
from vap_operator.decisions import (
    LIVE_POD_PHASES,
    WAITING_FOR_CAPACITY,
    Action,
    DesiredState,
    Plan,
    RestartPolicy,
    RunnerMemory,
    admit_runner,
    crashes_after,
    free_host_port,
    plan_reconcile,
    pod_name_for,
    wait_for_host_port,
    waiting_ahead_of,
)
from vap_operator.kube import manifests
from vap_operator.kube.api import KubeApi
from vap_operator.kube.crd import GROUP, KIND, PLURAL, VERSION
from vap_operator.kube.status import (
    live_runner_pods,
    memory_from_status,
    observe_pod,
    queued_scenario,
    render_status,
    runner_http_ports,
    runner_summary,
)
from vap_operator.publishing import Publisher, status_event
from vap_operator.settings import KubernetesSettings, RunnerLaunchSettings

log = logging.getLogger(__name__)

# Retry delay (seconds) after an unexpected error (API or broker hiccup) in a handler.
ERROR_BACKOFF_SECONDS = 5.0
# A runner slot (or host port) frees when another scenario's Pod ends, which wakes nobody waiting for it:
# those poll, at this many times VAP_KUBERNETES__WAIT_POLL_SECONDS (each poll LISTs the runner Pods).
CAPACITY_POLL_FACTOR = 5

PODS_CREATED = Counter("vap_operator_runner_pods_created_total", "Runner Pods created")
PODS_DELETED = Counter("vap_operator_runner_pods_deleted_total", "Runner Pods deleted", ["why"])
TRANSITIONS = Counter("vap_operator_transitions_total", "VideoScenario transitions", ["reason"])


@dataclass
class Dependencies:
    """What the handlers need, handed to kopf as its ``memo``."""

    kube: KubeApi
    publisher: Publisher
    sessions: sessionmaker[Session]
    kafka: KafkaSettings
    kubernetes: KubernetesSettings
    runner: RunnerLaunchSettings
    policy: RestartPolicy
    camera_policy: AddressPolicy  # passed on to every runner
    # Serialises the Pod watcher per VideoScenario (events of an old and a new Pod run concurrently).
    mirror_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)
    # Held from counting the runner Pods to creating one: two scenarios never take the same free slot or port.
    admission_lock: threading.Lock = field(default_factory=threading.Lock)

    def mirror_lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self.mirror_locks.setdefault(name, threading.Lock())


def deps_of(memo: Any) -> Dependencies:
    dependencies = memo.deps
    assert isinstance(dependencies, Dependencies)
    return dependencies


@kopf.on.resume(GROUP, VERSION, PLURAL, backoff=ERROR_BACKOFF_SECONDS)
@kopf.on.create(GROUP, VERSION, PLURAL, backoff=ERROR_BACKOFF_SECONDS)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", backoff=ERROR_BACKOFF_SECONDS)
@kopf.on.update(GROUP, VERSION, PLURAL, field="status.runner", backoff=ERROR_BACKOFF_SECONDS)
def reconcile(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """Drive the runner Pod towards spec.desiredState and record what happened."""
    deps = deps_of(memo)
    name = str(meta["name"])
    pod_name = pod_name_for(name)
    pod = deps.kube.read_pod(pod_name)
    memory = memory_from_status(status)
    now = datetime.now(UTC)
    plan = plan_reconcile(
        desired=DesiredState(spec.get("desiredState", DesiredState.ACTIVE.value)),
        memory=memory,
        pod=observe_pod(pod, owner_uid=str(meta["uid"])),
        now=now.timestamp(),
        policy=deps.policy,
        poll_seconds=deps.kubernetes.wait_poll_seconds,
    )
    scenario_uuid = UUID(str(spec["scenarioUUID"]))
    with _admission(deps, plan):
        plan = _admit(deps, plan, meta, memory)
        plan, http_port = _host_port(deps, plan, memory)
        _report(deps, scenario_uuid, plan, pod_name, became_ready=plan.ready and not memory.ready)
        _act(deps, body, plan, pod_name, http_port=http_port)
    _record_wait(deps, scenario_uuid, plan, memory)
    patch.status.update(
        render_status(
            plan,
            status,
            crashes=crashes_after(plan, memory, now.timestamp(), deps.policy),
            generation=int(meta.get("generation") or 0),
            pod_name=pod_name,
            now=now,
        )
    )
    for transition in plan.events:
        kopf.event(body, type=transition.type, reason=transition.reason, message=transition.message)
        TRANSITIONS.labels(transition.reason).inc()
    if plan.wait_seconds is not None:
        raise kopf.TemporaryError(plan.message or "waiting", delay=plan.wait_seconds)


def _admission(deps: Dependencies, plan: Plan) -> AbstractContextManager[object]:
    """The admission lock when this step may create a Pod under a capacity or on a host port, else nothing to hold."""
    limited = deps.kubernetes.capacity is not None or deps.kubernetes.host_network
    return deps.admission_lock if plan.action == Action.CREATE_POD and limited else nullcontext()


def _admit(deps: Dependencies, plan: Plan, meta: kopf.Meta, memory: RunnerMemory) -> Plan:
    """Under a capacity, a Pod is created only into a free slot, oldest waiting scenario first."""
    capacity = deps.kubernetes.capacity
    if plan.action != Action.CREATE_POD or capacity is None:
        return plan
    name = str(meta["name"])
    live = live_runner_pods(deps.kube.list_pods(manifests.RUNNER_SELECTOR), except_name=pod_name_for(name))
    ahead = 0
    if live < capacity:
        # The queue order is fairness, not safety (the Pod count is): a cached LIST is good enough.
        me = queued_scenario({"metadata": dict(meta)})
        ahead = waiting_ahead_of(
            me, [queued_scenario(other) for other in deps.kube.list_videoscenarios(from_cache=True)]
        )
    return admit_runner(
        plan,
        capacity=capacity,
        live_pods=live,
        waiting_ahead=ahead,
        already_waiting=memory.waiting_message is not None,
        poll_seconds=deps.kubernetes.wait_poll_seconds * CAPACITY_POLL_FACTOR,
    )


def _host_port(deps: Dependencies, plan: Plan, memory: RunnerMemory) -> tuple[Plan, int]:
    """On the node's network, the Pod to create gets the lowest host port no runner Pod has (or waits for one)."""
    kubernetes = deps.kubernetes
    if plan.action != Action.CREATE_POD or not kubernetes.host_network:
        return plan, RUNNER_HTTP_PORT
    used = runner_http_ports(deps.kube.list_pods(manifests.RUNNER_SELECTOR))
    port = free_host_port(used, first=kubernetes.host_port_first, last=kubernetes.host_port_last)
    if port is not None:
        return plan, port
    waiting = wait_for_host_port(
        plan,
        first=kubernetes.host_port_first,
        last=kubernetes.host_port_last,
        already_waiting=memory.waiting_message is not None,
        poll_seconds=kubernetes.wait_poll_seconds * CAPACITY_POLL_FACTOR,
    )
    return waiting, RUNNER_HTTP_PORT


def _record_wait(deps: Dependencies, scenario_uuid: UUID, plan: Plan, memory: RunnerMemory) -> None:
    """workers.wait_reason follows the Ready condition: set (or updated) while waiting for capacity or a port,
    cleared on the first step after the wait (written before the status, so a crash re-runs it)."""
    waiting = plan.ready_reason == WAITING_FOR_CAPACITY
    if waiting and plan.message != memory.waiting_message:
        report = workers.RunnerRecord(wait_reason=plan.message)
    elif not waiting and memory.waiting_message is not None:
        report = workers.RunnerRecord(clear_wait_reason=True)
    else:
        return
    with transaction(deps.sessions) as session:
        workers.record(session, scenario_uuid, report)


def _report(deps: Dependencies, scenario_uuid: UUID, plan: Plan, pod_name: str, *, became_ready: bool) -> None:
    """Tell Kafka and the workers row first: if we die before the status is written, this re-runs."""
    if plan.publish is not None:
        deps.publisher.send(
            [status_event(scenario_uuid, plan.publish.status, reason=plan.publish.reason, message=plan.publish.message)]
        )
    if plan.publish is None and plan.record_crash is None and plan.failed is None and not became_ready:
        return
    with transaction(deps.sessions) as session:
        workers.record(
            session,
            scenario_uuid,
            workers.RunnerRecord(
                status=plan.publish.status if plan.publish else (ScenarioStatus.FAILED if plan.failed else None),
                pod_name=pod_name,
                restart_count=plan.restarts,
                last_error=f"{plan.last_error[0]}: {plan.last_error[1]}" if plan.last_error else None,
                started=became_ready,
                stopped=plan.failed is not None or plan.stopped is not None,
            ),
        )


def _act(deps: Dependencies, body: kopf.Body, plan: Plan, pod_name: str, *, http_port: int) -> None:
    if plan.action == Action.CREATE_POD:
        pod = manifests.runner_pod(
            body,
            kubernetes=deps.kubernetes,
            runner=deps.runner,
            kafka=deps.kafka,
            camera_policy=deps.camera_policy,
            http_port=http_port,
        )
        if deps.kube.create_pod(pod):
            PODS_CREATED.inc()
    elif plan.action == Action.DELETE_POD and plan.delete_uid is not None:
        grace = int(deps.runner.stop_grace_seconds) if plan.graceful else 0
        if deps.kube.delete_pod(pod_name, uid=plan.delete_uid, grace_period_seconds=grace):
            PODS_DELETED.labels(plan.ready_reason).inc()


@kopf.on.event("", "v1", "pods", labels={manifests.LABEL_MANAGED_BY: manifests.MANAGED_BY})
def mirror_runner_pod(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """Copy the current state of a runner Pod into status.runner of the VideoScenario that owns it."""
    owner = next(
        (ref for ref in meta.get("ownerReferences") or [] if ref.get("kind") == KIND and ref.get("controller")), None
    )
    if owner is not None:
        _mirror(deps_of(memo), str(owner["name"]), str(owner["uid"]))


def resync_runner_status(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """Timer (registered in kube/run.py with its interval from the settings): mirror the Pod again.

    Pod events are not retried by kopf; if one mirror write was lost, this puts status.runner right
    and so wakes ``reconcile`` (e.g. for a crashed Pod nobody reacted to).
    """
    _mirror(deps_of(memo), str(meta["name"]), str(meta["uid"]))


def _mirror(deps: Dependencies, name: str, uid: str) -> None:
    with deps.mirror_lock(name):
        # Read, not the event's body: an old Pod's late event must not overwrite its successor's state.
        current = observe_pod(deps.kube.read_pod(pod_name_for(name)), owner_uid=uid)
        summary = runner_summary(current, observed_at=datetime.now(UTC))
        deps.kube.patch_videoscenario_status(name, {"status": {"runner": summary}})


@kopf.on.delete(GROUP, VERSION, PLURAL, backoff=ERROR_BACKOFF_SECONDS)
def cleanup(spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Finalizer: the Pod (and the camera Secret) go before the VideoScenario does."""
    deps = deps_of(memo)
    name = str(meta["name"])
    pod = observe_pod(deps.kube.read_pod(pod_name_for(name)), owner_uid=str(meta["uid"]))
    if pod is not None and pod.owned and not pod.deleting:
        live = pod.phase in LIVE_POD_PHASES
        deps.kube.delete_pod(
            pod_name_for(name), uid=pod.uid, grace_period_seconds=int(deps.runner.stop_grace_seconds) if live else 0
        )
        PODS_DELETED.labels("ObjectDeleted").inc()
        kopf.event(body, type="Normal", reason="Stopping", message="VideoScenario deleted: deleting the runner Pod")
        pod = observe_pod(
            deps.kube.read_pod(pod_name_for(name)), owner_uid=str(meta["uid"])
        )  # a Pod on no node goes at once
    if pod is not None and pod.owned:
        raise kopf.TemporaryError("waiting for the runner Pod to go", delay=deps.kubernetes.wait_poll_seconds)
    secret = (spec.get("cameraSecretRef") or {}).get("name")
    if secret:
        deps.kube.delete_secret(str(secret))
    memory = memory_from_status(status)
    if memory.failed_reason is None and memory.stopped_reason is None:
        scenario_uuid = UUID(str(spec["scenarioUUID"]))
        deps.publisher.send([status_event(scenario_uuid, ScenarioStatus.INACTIVE, message="VideoScenario deleted")])
        with transaction(deps.sessions) as session:
            workers.record(session, scenario_uuid, workers.RunnerRecord(status=ScenarioStatus.INACTIVE, stopped=True))
