"""Pure decisions of the orchestrator and both runtimes: no I/O and no clock (time is an argument).

Everything here is a plain function of its inputs so it can be unit-tested without a cluster, a
broker or a database, and re-run after a restart with the same result (level-based reconciliation).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal
from uuid import UUID

from vap_common.lifecycle import FailureReason, ScenarioStatus, can_transition, is_terminal
from vap_common.runner_contract import RunnerExit

S = ScenarioStatus
DeployAction = Literal["deploy", "stop"]
CommandKind = Literal["start", "shutdown"]


class DesiredState(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


# --- names ------------------------------------------------------------------------------------------
# Derived from the scenario UUID only, so a replayed message always lands on the same row/object.


def worker_id_for(scenario_uuid: UUID) -> str:
    """The worker id of a scenario (43 characters: fits a label value and the CRD's 63 limit)."""
    return f"w-{scenario_uuid}"


def resource_name_for(scenario_uuid: UUID) -> str:
    """The VideoScenario object name of a scenario."""
    return f"vs-{scenario_uuid}"


def pod_name_for(resource_name: str) -> str:
    """The one runner Pod of a VideoScenario: a fixed name, so the API server refuses a second one."""
    return f"{resource_name}-runner"


def camera_secret_name_for(resource_name: str) -> str:
    """The Secret holding a camera URL that carries credentials."""
    return f"{resource_name}-camera"


# --- orchestrator -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerState:
    """What the `workers` row says about a scenario."""

    desired_state: DesiredState
    status: ScenarioStatus


@dataclass(frozen=True)
class CommandEffect:
    """What one scenario command does: the row to store and the messages to (re)publish."""

    desired_state: DesiredState
    status: ScenarioStatus
    write_row: bool  # False for a replay: the row already says this
    publish_status: ScenarioStatus | None
    deploy_action: DeployAction | None


def decide_command(current: WorkerState | None, command: CommandKind) -> CommandEffect:
    """The effect of a start/shutdown command on a scenario whose row is ``current`` (None: no row).

    The row is written before the messages are published, so a crash in between redelivers the
    command onto an existing row: a replay re-publishes what the row still says (harmless downstream,
    it never moves anything backwards) instead of losing the deployment. A shutdown that arrives
    before its start leaves an ``inactive`` row, and the late start is then not deployed.
    """
    if current is None:
        if command == "start":
            return CommandEffect(DesiredState.ACTIVE, S.IN_STARTUP_PROCESSING, True, S.IN_STARTUP_PROCESSING, "deploy")
        return CommandEffect(DesiredState.INACTIVE, S.IN_SHUTDOWN_PROCESSING, True, S.IN_SHUTDOWN_PROCESSING, "stop")

    if current.desired_state == DesiredState.ACTIVE:
        if command == "start":
            # Replay. Until the runtime moved the status on, the first publish may have been lost.
            pending = current.status == S.IN_STARTUP_PROCESSING
            return CommandEffect(
                current.desired_state,
                current.status,
                False,
                S.IN_STARTUP_PROCESSING if pending else None,
                "deploy" if pending else None,
            )
        status = shutdown_status(current.status)
        return CommandEffect(
            DesiredState.INACTIVE, status, True, S.IN_SHUTDOWN_PROCESSING if status != current.status else None, "stop"
        )

    if command == "start":
        # Shutdown already requested (possibly before this start arrived): never deploy.
        return CommandEffect(current.desired_state, current.status, False, None, None)
    pending = current.status == S.IN_SHUTDOWN_PROCESSING
    return CommandEffect(
        current.desired_state,
        current.status,
        False,
        S.IN_SHUTDOWN_PROCESSING if pending else None,
        None if current.status == S.INACTIVE else "stop",
    )


def shutdown_status(current: ScenarioStatus) -> ScenarioStatus:
    """The row status once a shutdown command arrives: the API moved the scenario to init_shutdown
    before sending it, so a starting or active scenario goes on to in_shutdown_processing; a failed
    or inactive one stays where it is."""
    through = S.INIT_SHUTDOWN if can_transition(current, S.INIT_SHUTDOWN) else current
    return S.IN_SHUTDOWN_PROCESSING if can_transition(through, S.IN_SHUTDOWN_PROCESSING) else current


def next_worker_status(current: ScenarioStatus, reported: ScenarioStatus) -> ScenarioStatus | None:
    """The status a runtime may store after ``reported``; None when it would move backwards or repeat."""
    return reported if can_transition(current, reported) else None


# --- restarts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    backoff_base_seconds: float
    backoff_max_seconds: float
    crash_loop_threshold: int  # crashes within the window that make the scenario `failed`
    crash_loop_window_seconds: float


def recent_crashes(crash_times: Sequence[float], now: float, policy: RestartPolicy) -> list[float]:
    """Crash times (epoch seconds) inside the crash-loop window, oldest first."""
    return sorted(t for t in crash_times if now - t < policy.crash_loop_window_seconds)


def is_crash_loop(crash_times: Sequence[float], now: float, policy: RestartPolicy) -> bool:
    """True when the runner crashed ``crash_loop_threshold`` times within the window."""
    return len(recent_crashes(crash_times, now, policy)) >= policy.crash_loop_threshold


def restart_backoff_seconds(crash_count: int, policy: RestartPolicy) -> float:
    """Exponential backoff after the ``crash_count``-th recent crash (0 crashes: start at once)."""
    if crash_count <= 0:
        return 0.0
    return float(min(policy.backoff_base_seconds * 2 ** (crash_count - 1), policy.backoff_max_seconds))


def restart_wait_seconds(crash_times: Sequence[float], now: float, policy: RestartPolicy) -> float:
    """How long to wait from ``now`` before starting the runner again (0: start now)."""
    recent = recent_crashes(crash_times, now, policy)
    if not recent:
        return 0.0
    return max(0.0, recent[-1] + restart_backoff_seconds(len(recent), policy) - now)


def keep_crashes(crash_times: Sequence[float], now: float, policy: RestartPolicy) -> list[float]:
    """The crash times worth remembering: those in the window, and always the latest one."""
    ordered = sorted(crash_times)
    kept = recent_crashes(ordered, now, policy)
    if ordered and (not kept or kept[-1] != ordered[-1]):
        kept.append(ordered[-1])
    return kept


class ExitKind(StrEnum):
    COMPLETED = "completed"  # exit 0 on its own: end of a file
    GAVE_UP = "gave_up"  # exit 3: the runner reported `failed` itself; do not restart
    CRASHED = "crashed"  # anything else: restart with backoff
    STOPPED = "stopped"  # we asked it to stop: whatever the code, it is stopped


def classify_exit(exit_code: int | None, *, stop_requested: bool, stopped_by_node: bool = False) -> ExitKind:
    """What a runner's exit means, for both runtimes (``exit_code`` None: it died without one, e.g. a lost Pod).

    Exit 0 is the runner finishing: its source ended, or it drained after a SIGTERM. Unasked, that is
    the end of the scenario, except when ``stopped_by_node``: Kubernetes marks a Pod Failed whose
    runner exited 0 when the node stopped it (eviction, node shutdown, a deadline), so it did not finish
    its source and is restarted like a crash (counting towards the crash loop). A local runner has no
    node: one stopped by a person's SIGTERM is taken as done.
    """
    if stop_requested:
        return ExitKind.STOPPED
    if exit_code == RunnerExit.DONE:
        return ExitKind.CRASHED if stopped_by_node else ExitKind.COMPLETED
    if exit_code == RunnerExit.FAILED:
        return ExitKind.GAVE_UP
    return ExitKind.CRASHED


def failure_reason_from(message: str | None) -> FailureReason | None:
    """The reason code at the start of a runner's termination message, if it wrote one."""
    if not message:
        return None
    head = message.strip().split(maxsplit=1)[0].rstrip(":") if message.strip() else ""
    try:
        return FailureReason(head)
    except ValueError:
        return None


# --- kubernetes reconciliation -------------------------------------------------------------------


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class ObservedPod:
    """The runner Pod as read from the API server."""

    uid: str
    phase: PodPhase
    ready: bool = False
    exit_code: int | None = None
    message: str | None = None  # the container's termination message (reason code first, if any)
    deleting: bool = False  # deletionTimestamp set
    owned: bool = True  # its ownerReference points at this VideoScenario (same UID)


@dataclass(frozen=True)
class Crash:
    pod_uid: str
    at: float  # epoch seconds
    exit_code: int | None


@dataclass(frozen=True)
class RunnerMemory:
    """What the VideoScenario status remembers between reconciliations."""

    crashes: tuple[Crash, ...] = ()
    restarts: int = 0
    ready: bool = False
    failed_reason: str | None = None  # Failed condition True: terminal
    stopped_reason: str | None = None  # Stopped condition True: terminal
    waiting_message: str | None = None  # the Ready condition's message while it says WaitingForCapacity


class Action(StrEnum):
    NONE = "none"
    CREATE_POD = "create_pod"
    DELETE_POD = "delete_pod"


@dataclass(frozen=True)
class Publish:
    status: ScenarioStatus
    reason: FailureReason | None = None
    message: str | None = None


@dataclass(frozen=True)
class Transition:
    """A Kubernetes Event to post for this step."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """The next step for one VideoScenario: one action, the status to show, what to tell others."""

    phase: ScenarioStatus
    action: Action = Action.NONE
    delete_uid: str | None = None  # delete only this Pod (precondition), never a newer one
    graceful: bool = True
    wait_seconds: float | None = None  # reconcile again after this long (kopf.TemporaryError delay)
    ready: bool = False
    ready_reason: str = "RunnerNotReady"
    message: str = ""
    record_crash: Crash | None = None
    restarts: int = 0
    last_error: tuple[str, str] | None = None  # (reason, message) shown in status.lastError
    failed: tuple[str, str] | None = None  # (reason, message) -> Failed condition, terminal
    stopped: tuple[str, str] | None = None  # (reason, message) -> Stopped condition, terminal
    publish: Publish | None = None
    events: tuple[Transition, ...] = field(default_factory=tuple)


def crashes_after(plan: Plan, memory: RunnerMemory, now: float, policy: RestartPolicy) -> tuple[Crash, ...]:
    """The crashes to remember once ``plan`` is applied: the new one added, the old ones pruned."""
    crashes = memory.crashes + ((plan.record_crash,) if plan.record_crash else ())
    kept = set(keep_crashes([crash.at for crash in crashes], now, policy))
    return tuple(crash for crash in crashes if crash.at in kept)


def plan_reconcile(
    *,
    desired: DesiredState,
    memory: RunnerMemory,
    pod: ObservedPod | None,
    now: float,
    policy: RestartPolicy,
    poll_seconds: float,
) -> Plan:
    """Compare the desired state with the runner Pod and decide the next step.

    Ordering rules that make re-runs safe: a crash is recorded (status persisted) before its Pod is
    deleted, so a restart never loses the count; `failed`/`inactive` are published before the
    status that makes them terminal is written, so a crash in between re-publishes (harmless).
    """
    base = Plan(phase=S.IN_STARTUP_PROCESSING, restarts=memory.restarts, ready=False)

    if memory.failed_reason is not None or memory.stopped_reason is not None:
        return _plan_terminal(desired, memory, pod, base)

    if pod is not None and not pod.owned:
        if pod.deleting:
            return replace(
                base, wait_seconds=poll_seconds, message="waiting for a foreign Pod with the runner's name to go"
            )
        return replace(
            base,
            action=Action.DELETE_POD,
            delete_uid=pod.uid,
            graceful=False,
            wait_seconds=poll_seconds,
            message="deleting a Pod left by an earlier object of the same name",
            events=(
                Transition("Warning", "ForeignPodDeleted", "deleted a runner Pod not owned by this VideoScenario"),
            ),
        )

    if desired == DesiredState.INACTIVE:
        return _plan_shutdown(memory, pod, base, poll_seconds)

    if pod is None:
        wait = restart_wait_seconds([crash.at for crash in memory.crashes], now, policy)
        if wait > 0:
            return replace(
                base, wait_seconds=wait, ready_reason="BackOff", message=f"restarting the runner in {wait:.1f}s"
            )
        restarting = bool(memory.crashes)
        return replace(
            base,
            action=Action.CREATE_POD,
            ready_reason="PodCreated",
            message="runner Pod created",
            events=(
                Transition(
                    "Normal",
                    "RunnerRestarted" if restarting else "PodCreated",
                    f"runner Pod created (restarts: {memory.restarts})",
                ),
            ),
        )

    if pod.deleting:
        return replace(
            base,
            wait_seconds=poll_seconds,
            ready_reason="PodTerminating",
            message="waiting for the old runner Pod to go",
        )

    if pod.phase == PodPhase.SUCCEEDED:
        return _inactive(
            base,
            stopped=("RunnerCompleted", "the runner finished its source and exited 0"),
            message="runner completed",
            event=Transition("Normal", "RunnerCompleted", "the runner exited 0; scenario inactive"),
        )

    if pod.phase == PodPhase.FAILED:
        return _plan_failed_pod(memory, pod, base, now, policy, poll_seconds)

    if pod.phase == PodPhase.RUNNING and pod.ready:
        events = () if memory.ready else (Transition("Normal", "RunnerReady", "the runner Pod is ready"),)
        return replace(
            base, phase=S.ACTIVE, ready=True, ready_reason="RunnerReady", message="runner ready", events=events
        )

    return replace(
        base, ready_reason=f"Pod{pod.phase.value}", message=f"runner Pod {pod.phase.value.lower()}, not ready"
    )


def _inactive(base: Plan, *, stopped: tuple[str, str], message: str, event: Transition) -> Plan:
    """The runner is gone for good without a failure: phase inactive, published once, Stopped condition."""
    return replace(
        base,
        phase=S.INACTIVE,
        stopped=stopped,
        publish=Publish(S.INACTIVE),
        ready_reason="Stopped",
        message=message,
        events=(event,),
    )


def _plan_terminal(desired: DesiredState, memory: RunnerMemory, pod: ObservedPod | None, base: Plan) -> Plan:
    failed = memory.failed_reason is not None
    terminal = replace(
        base,
        phase=S.FAILED if failed else S.INACTIVE,
        ready_reason="Failed" if failed else "Stopped",
        message="scenario failed" if failed else "scenario inactive",
    )
    # A finished runner's Pod is kept for its logs (like a Job's); it goes when the scenario is shut
    # down, and a live Pod of a terminal scenario (e.g. foreign, or created by a lost race) goes at once.
    live = pod is not None and pod.phase in (PodPhase.PENDING, PodPhase.RUNNING, PodPhase.UNKNOWN)
    if pod is not None and not pod.deleting and (desired == DesiredState.INACTIVE or live or not pod.owned):
        return replace(terminal, action=Action.DELETE_POD, delete_uid=pod.uid, graceful=live)
    return terminal


def _plan_shutdown(memory: RunnerMemory, pod: ObservedPod | None, base: Plan, poll_seconds: float) -> Plan:
    stopping = replace(base, phase=S.IN_SHUTDOWN_PROCESSING, ready_reason="Stopping", message="stopping the runner")
    if pod is None:
        return _inactive(
            base,
            stopped=("ShutdownRequested", "the runner Pod is gone after shutdown"),
            message="runner stopped",
            event=Transition("Normal", "Stopped", "the runner Pod is gone; scenario inactive"),
        )
    if pod.deleting:
        return replace(stopping, wait_seconds=poll_seconds)
    live = pod.phase in (PodPhase.PENDING, PodPhase.RUNNING, PodPhase.UNKNOWN)
    return replace(
        stopping,
        action=Action.DELETE_POD,
        delete_uid=pod.uid,
        graceful=live,
        wait_seconds=poll_seconds,
        events=(Transition("Normal", "Stopping", "shutdown requested: deleting the runner Pod"),),
    )


def _plan_failed_pod(
    memory: RunnerMemory, pod: ObservedPod, base: Plan, now: float, policy: RestartPolicy, poll_seconds: float
) -> Plan:
    kind = classify_exit(pod.exit_code, stop_requested=False, stopped_by_node=True)
    if kind == ExitKind.GAVE_UP:
        reason = failure_reason_from(pod.message)
        message = (pod.message or "the runner gave up (exit 3)").strip()[:1000]
        failed = (reason.value if reason else "RunnerGaveUp", message)
        return replace(
            base,
            phase=S.FAILED,
            failed=failed,
            last_error=failed,
            ready_reason="Failed",
            message="runner gave up",
            # The runner published `failed` with its reason before exiting 3: nothing to publish.
            events=(Transition("Warning", "RunnerGaveUp", message),),
        )

    known = {crash.pod_uid for crash in memory.crashes}
    if pod.uid not in known:
        crash = Crash(pod_uid=pod.uid, at=now, exit_code=pod.exit_code)
        times = [c.at for c in memory.crashes] + [now]
        detail = f"runner exited with code {pod.exit_code}" if pod.exit_code is not None else "runner Pod failed"
        if pod.message:
            detail = f"{detail}: {pod.message.strip()[:500]}"
        if is_crash_loop(times, now, policy):
            message = (
                f"{policy.crash_loop_threshold} crashes within {policy.crash_loop_window_seconds:.0f}s; last: {detail}"
            )
            return replace(
                base,
                phase=S.FAILED,
                record_crash=crash,
                failed=(FailureReason.RUNNER_CRASH_LOOP.value, message),
                last_error=(FailureReason.RUNNER_CRASH_LOOP.value, message),
                publish=Publish(S.FAILED, FailureReason.RUNNER_CRASH_LOOP, message),
                ready_reason="Failed",
                message="runner crash loop",
                events=(Transition("Warning", FailureReason.RUNNER_CRASH_LOOP.value, message),),
            )
        wait = restart_wait_seconds(times, now, policy)
        return replace(
            base,
            record_crash=crash,
            restarts=memory.restarts + 1,
            last_error=("RunnerCrashed", detail),
            wait_seconds=wait if wait > 0 else poll_seconds,
            ready_reason="BackOff",
            message=f"{detail}; restarting in {wait:.1f}s",
            events=(Transition("Warning", "RunnerCrashed", f"{detail}; restart {memory.restarts + 1} in {wait:.1f}s"),),
        )

    wait = restart_wait_seconds([c.at for c in memory.crashes], now, policy)
    if wait > 0:
        return replace(base, wait_seconds=wait, ready_reason="BackOff", message=f"restarting the runner in {wait:.1f}s")
    return replace(
        base,
        action=Action.DELETE_POD,
        delete_uid=pod.uid,
        graceful=False,
        wait_seconds=poll_seconds,
        ready_reason="BackOff",
        message="replacing the crashed runner Pod",
    )


# --- admission --------------------------------------------------------------------------------------


class DeployVerdict(StrEnum):
    APPLY = "apply"
    STALE = "stale"  # the row moved on (stop requested, or terminal): a late replay, nothing to do
    UNKNOWN = "unknown"  # no row: not a scenario the orchestrator registered; dead-letter it


def judge_deploy(row: WorkerState | None, action: DeployAction) -> DeployVerdict:
    """Whether a runtime acts on a to_deploy message, given the scenario's `workers` row (None: none).

    The orchestrator writes the row before it publishes, so a message without one never came from it:
    acting on it would start a runner on whatever camera URL it carries. A deploy for a row that is
    desired inactive or terminal is a replay that came too late to matter; a stop is always applied.
    """
    if row is None:
        return DeployVerdict.UNKNOWN
    if action == "deploy" and (row.desired_state == DesiredState.INACTIVE or is_terminal(row.status)):
        return DeployVerdict.STALE
    return DeployVerdict.APPLY


WAITING_FOR_CAPACITY = "WaitingForCapacity"
LIVE_POD_PHASES = frozenset({PodPhase.PENDING, PodPhase.RUNNING, PodPhase.UNKNOWN})


@dataclass(frozen=True)
class QueuedScenario:
    """A VideoScenario as the capacity queue sees it: oldest first, the name breaks ties."""

    created_at: str  # metadata.creationTimestamp (RFC 3339, UTC, whole seconds: sorts as text)
    name: str
    waiting: bool  # desired active, not being deleted, Ready reason WaitingForCapacity


def waiting_ahead_of(me: QueuedScenario, others: Sequence[QueuedScenario]) -> int:
    """How many scenarios waiting for capacity are ahead of ``me`` (they take free slots first)."""
    return sum(
        1
        for other in others
        if other.waiting and other.name != me.name and (other.created_at, other.name) < (me.created_at, me.name)
    )


def admit_runner(
    plan: Plan, *, capacity: int | None, live_pods: int, waiting_ahead: int, already_waiting: bool, poll_seconds: float
) -> Plan:
    """Let a CREATE_POD plan through only while a runner slot is free for it (None capacity: no limit).

    ``live_pods``: runner Pods that are not terminal, this scenario's own excluded. A refused plan keeps
    the phase (in_startup_processing), says why in the Ready condition and asks to be re-run after
    ``poll_seconds``; the Event is posted once, when the wait begins.
    """
    if plan.action != Action.CREATE_POD or capacity is None or live_pods + waiting_ahead < capacity:
        return plan
    message = f"waiting for capacity: {live_pods} of {capacity} runner Pods"
    if waiting_ahead:
        message += f", {waiting_ahead} older scenario(s) waiting first"
    return _wait_for_capacity(plan, message, already_waiting=already_waiting, poll_seconds=poll_seconds)


def free_host_port(used: Collection[int], *, first: int, last: int) -> int | None:
    """The lowest port of ``first``..``last`` that no runner Pod has (None: every one is taken)."""
    return next((port for port in range(first, last + 1) if port not in used), None)


def wait_for_host_port(plan: Plan, *, first: int, last: int, already_waiting: bool, poll_seconds: float) -> Plan:
    """Hold back a CREATE_POD plan while every host port is taken: it waits as one past the capacity does."""
    return _wait_for_capacity(
        plan, f"no free host port in {first}-{last}", already_waiting=already_waiting, poll_seconds=poll_seconds
    )


def _wait_for_capacity(plan: Plan, message: str, *, already_waiting: bool, poll_seconds: float) -> Plan:
    return replace(
        plan,
        action=Action.NONE,
        wait_seconds=poll_seconds,
        ready_reason=WAITING_FOR_CAPACITY,
        message=message,
        events=() if already_waiting else (Transition("Normal", WAITING_FOR_CAPACITY, message),),
    )
