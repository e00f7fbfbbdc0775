"""Admission in the kubernetes runtime: which to_deploy messages are acted on, capacity, host ports, leases."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from vap_common.lifecycle import ScenarioStatus
from vap_operator.decisions import (
    WAITING_FOR_CAPACITY,
    Action,
    DeployAction,
    DeployVerdict,
    DesiredState,
    Plan,
    QueuedScenario,
    Transition,
    WorkerState,
    admit_runner,
    free_host_port,
    judge_deploy,
    wait_for_host_port,
    waiting_ahead_of,
)
from vap_operator.kube.status import (
    live_runner_pods,
    memory_from_status,
    queued_scenario,
    ready_runner_scenarios,
    runner_http_ports,
)
from vap_operator.threads import start_periodic_thread

S = ScenarioStatus
A, I = DesiredState.ACTIVE, DesiredState.INACTIVE
CREATE = Plan(
    phase=S.IN_STARTUP_PROCESSING,
    action=Action.CREATE_POD,
    ready_reason="PodCreated",
    message="runner Pod created",
    events=(Transition("Normal", "PodCreated", "runner Pod created (restarts: 0)"),),
)


# --- which to_deploy messages are acted on ---------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "action", "verdict"),
    [
        (None, "deploy", DeployVerdict.UNKNOWN),
        (None, "stop", DeployVerdict.UNKNOWN),
        (WorkerState(A, S.IN_STARTUP_PROCESSING), "deploy", DeployVerdict.APPLY),
        (WorkerState(A, S.ACTIVE), "deploy", DeployVerdict.APPLY),  # a replay: the object exists, nothing changes
        (WorkerState(I, S.IN_SHUTDOWN_PROCESSING), "deploy", DeployVerdict.STALE),  # shutdown overtook it
        (WorkerState(A, S.FAILED), "deploy", DeployVerdict.STALE),  # e.g. InvalidConfig: never again
        (WorkerState(A, S.INACTIVE), "deploy", DeployVerdict.STALE),  # the runner completed
        (WorkerState(I, S.INACTIVE), "deploy", DeployVerdict.STALE),
        (WorkerState(I, S.IN_SHUTDOWN_PROCESSING), "stop", DeployVerdict.APPLY),
        (WorkerState(I, S.INACTIVE), "stop", DeployVerdict.APPLY),  # a stop is always safe to apply
        (WorkerState(A, S.FAILED), "stop", DeployVerdict.APPLY),
    ],
)
def test_deploys_are_acted_on_only_for_registered_scenarios_still_wanted(
    row: WorkerState | None, action: DeployAction, verdict: DeployVerdict
) -> None:
    assert judge_deploy(row, action) == verdict


# --- capacity ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "live", "ahead", "admitted"),
    [
        (None, 500, 9, True),  # no limit
        (2, 0, 0, True),
        (2, 1, 0, True),
        (2, 2, 0, False),
        (2, 3, 0, False),  # over (capacity lowered while Pods run): nobody new until below
        (2, 1, 1, False),  # one free slot, an older scenario takes it
        (3, 1, 1, True),
        (1, 0, 0, True),
    ],
)
def test_a_pod_is_created_only_into_a_free_slot_oldest_first(
    capacity: int | None, live: int, ahead: int, admitted: bool
) -> None:
    plan = admit_runner(
        CREATE, capacity=capacity, live_pods=live, waiting_ahead=ahead, already_waiting=False, poll_seconds=10
    )
    assert (plan == CREATE) is admitted
    if not admitted:
        assert (plan.action, plan.phase, plan.ready, plan.ready_reason, plan.wait_seconds) == (
            Action.NONE,
            S.IN_STARTUP_PROCESSING,
            False,
            WAITING_FOR_CAPACITY,
            10,
        )


def test_the_wait_says_why_and_posts_its_event_once() -> None:
    first = admit_runner(CREATE, capacity=20, live_pods=20, waiting_ahead=0, already_waiting=False, poll_seconds=10)
    assert first.message == "waiting for capacity: 20 of 20 runner Pods"
    assert first.events == (Transition("Normal", WAITING_FOR_CAPACITY, first.message),)
    again = admit_runner(CREATE, capacity=20, live_pods=19, waiting_ahead=3, already_waiting=True, poll_seconds=10)
    assert again.message == "waiting for capacity: 19 of 20 runner Pods, 3 older scenario(s) waiting first"
    assert again.events == ()


@pytest.mark.parametrize(
    "plan",
    [Plan(phase=S.ACTIVE, ready=True), Plan(phase=S.IN_SHUTDOWN_PROCESSING, action=Action.DELETE_POD, delete_uid="u")],
)
def test_only_pod_creation_waits_for_capacity(plan: Plan) -> None:
    assert admit_runner(plan, capacity=1, live_pods=5, waiting_ahead=5, already_waiting=True, poll_seconds=10) == plan


def q(name: str, created_at: str, *, waiting: bool = True) -> QueuedScenario:
    return QueuedScenario(created_at=created_at, name=name, waiting=waiting)


@pytest.mark.parametrize(
    ("others", "ahead"),
    [
        ([], 0),
        ([q("a", "2026-11-30T12:00:00Z")], 1),
        ([q("a", "2026-11-30T12:00:00Z", waiting=False)], 0),  # running, stopped or not yet reconciled
        ([q("z", "2026-11-30T12:00:05Z")], 0),  # younger
        ([q("a", "2026-11-30T12:00:05Z"), q("z", "2026-11-30T12:00:05Z")], 1),  # same second: the name decides
        ([q("m", "2026-11-30T12:00:05Z")], 0),  # itself
        ([q("a", "2026-11-30T11:00:00Z"), q("b", "2026-11-30T11:30:00Z"), q("c", "2026-11-30T13:00:00Z")], 2),
    ],
)
def test_waiting_scenarios_queue_by_creation_time(others: list[QueuedScenario], ahead: int) -> None:
    assert waiting_ahead_of(q("m", "2026-11-30T12:00:05Z"), others) == ahead


def pod(
    name: str, phase: str | None, *, ready: bool = False, scenario: str | None = None, deleting: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "labels": {"vap.dev/scenario-uuid": scenario} if scenario else {},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if phase is not None:
        status["phase"] = phase
    return {"metadata": metadata, "status": status}


def test_runner_pods_hold_a_slot_until_they_are_terminal() -> None:
    pods = [
        pod("p1", "Pending"),
        pod("p2", "Running", ready=True),
        pod("p3", "Unknown"),
        pod("p4", None),  # just created: no status yet
        pod("p5", "Running", deleting=True),  # still running its grace period
        pod("done", "Succeeded"),  # kept for its logs
        pod("crashed", "Failed"),
        pod("mine", "Pending"),
    ]
    assert live_runner_pods(pods, except_name="mine") == 5


def test_a_videoscenario_waits_in_the_queue_only_while_its_status_says_so() -> None:
    def body(*, reason: str, desired: str = "active", deleting: bool = False) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": "vs-1", "creationTimestamp": "2026-11-30T12:00:00Z"}
        if deleting:
            metadata["deletionTimestamp"] = "2026-11-30T12:01:00Z"
        ready = {
            "type": "Ready",
            "status": "False",
            "reason": reason,
            "message": "waiting for capacity: 2 of 2 runner Pods",
        }
        return {"metadata": metadata, "spec": {"desiredState": desired}, "status": {"conditions": [ready]}}

    assert queued_scenario(body(reason=WAITING_FOR_CAPACITY)) == q("vs-1", "2026-11-30T12:00:00Z")
    assert not queued_scenario(body(reason="PodCreated")).waiting
    assert not queued_scenario(body(reason=WAITING_FOR_CAPACITY, desired="inactive")).waiting
    assert not queued_scenario(body(reason=WAITING_FOR_CAPACITY, deleting=True)).waiting
    assert not queued_scenario({"metadata": {"name": "vs-new"}}).waiting  # not reconciled yet
    assert (
        memory_from_status(body(reason=WAITING_FOR_CAPACITY)["status"]).waiting_message
        == "waiting for capacity: 2 of 2 runner Pods"
    )
    assert memory_from_status(body(reason="PodCreated")["status"]).waiting_message is None


# --- host ports (runner Pods on the node's network) --------------------------------------------------


def test_a_runner_pod_gets_the_lowest_host_port_no_runner_pod_has() -> None:
    assert free_host_port(set(), first=28300, last=28302) == 28300
    assert free_host_port({28300, 28302}, first=28300, last=28302) == 28301
    assert free_host_port({9100, 28301}, first=28300, last=28302) == 28300  # ports outside the range do not matter


def test_a_host_port_is_taken_again_once_its_pod_is_gone() -> None:
    used = {28300, 28301, 28302}
    assert free_host_port(used, first=28300, last=28302) is None
    assert free_host_port(used - {28301}, first=28300, last=28302) == 28301  # e.g. a crashed Pod's replacement


def test_without_a_free_host_port_pod_creation_waits_as_past_the_capacity() -> None:
    plan = wait_for_host_port(CREATE, first=28300, last=28301, already_waiting=False, poll_seconds=10)
    assert (plan.action, plan.phase, plan.ready_reason, plan.message, plan.wait_seconds) == (
        Action.NONE,
        S.IN_STARTUP_PROCESSING,
        WAITING_FOR_CAPACITY,
        "no free host port in 28300-28301",
        10,
    )
    assert plan.events == (Transition("Normal", WAITING_FOR_CAPACITY, plan.message),)
    assert wait_for_host_port(CREATE, first=28300, last=28301, already_waiting=True, poll_seconds=10).events == ()


def test_runner_pods_hold_their_http_port_whatever_their_phase() -> None:
    def runner(name: str, phase: str | None, port: int, *, port_name: str = "http") -> dict[str, Any]:
        return {
            **pod(name, phase),
            "spec": {"containers": [{"name": "runner", "ports": [{"name": port_name, "containerPort": port}]}]},
        }

    pods = [
        runner("p1", "Pending", 28300),
        runner("p2", None, 28301),  # just created: no status yet
        runner("done", "Succeeded", 28302),  # kept for its logs
        runner("other", "Running", 28303, port_name="metrics"),
        pod("bare", "Running"),  # no spec: not a Pod the operator made
    ]
    assert runner_http_ports(pods) == {28300, 28301, 28302}


# --- leases ------------------------------------------------------------------------------------------


def test_leases_are_renewed_for_running_ready_runner_pods_only() -> None:
    ready, starting, finished = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pods = [
        pod("a", "Running", ready=True, scenario=str(ready)),
        pod("b", "Running", ready=False, scenario=str(starting)),
        pod("c", "Succeeded", ready=True, scenario=str(finished)),  # a stale Ready condition after exit
        pod("d", "Running", ready=True),  # no scenario label
        pod("e", "Running", ready=True, scenario="not-a-uuid"),
    ]
    assert ready_runner_scenarios(pods) == [ready]


def test_a_periodic_task_that_fails_keeps_running_on_schedule() -> None:
    stop = threading.Event()
    runs: list[int] = []

    def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise ConnectionError("database down")  # an outage: logged, the next period tries again
        if len(runs) == 4:
            stop.set()

    thread = start_periodic_thread("test-task", flaky, interval_seconds=0.01, stop=stop)
    thread.join(timeout=5)
    assert not thread.is_alive() and len(runs) == 4
